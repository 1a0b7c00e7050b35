"""Analysis scripts that read finished (or partial) study directories and write figures and
tables. They never load a diffusion model and never need a GPU. Run them from the repository
root as modules:

* ``python -m analysis.insights STUDY_DIR … --out DIR`` — Qua²SeDiMo-style insight figures;
* ``python -m analysis.compare_studies DIT_DIR UNET_DIR --out DIR`` — does "U-Nets prefer
  uniform quantization, DiTs prefer k-means" hold? (with bootstrap intervals);
* ``python -m analysis.surrogate_quality STUDY_DIR … --out DIR`` — ridge vs XGBoost vs GNN;
* ``python -m analysis.replicated REPLICATES_DIR … --sweeps SWEEP_DIR … --out DIR`` — the
  headlines per replicate of ``qua2 run --replicates``, with their spread across replicates.

``python -m analysis`` lists them. The statistics and attributions they use live in the
library (:mod:`qua2.stats`, :mod:`qua2.explain.summaries`); see ``docs/cli.md`` for every flag.
"""

#: Script module → what it writes (``python -m analysis`` prints this list).
SCRIPTS = {
    "insights": "Qua²SeDiMo-style insight figures of one or more studies",
    "compare_studies": "method preference (uniform vs k-means) of DiT and U-Net studies",
    "surrogate_quality": "ridge vs XGBoost vs GNN from the studies' qua2 fit reports",
    "replicated": "each headline per replicate and across replicates (qua2 run --replicates)",
}
