"""Analysis scripts that read finished (or partial) study directories and write figures and
tables. They never load a diffusion model and never need a GPU.

* ``python analysis/insights.py STUDY_DIR --out DIR`` — Qua²SeDiMo-style insight figures;
* ``python analysis/compare_studies.py DIT_DIR UNET_DIR --out DIR`` — does "U-Nets prefer
  uniform quantization, DiTs prefer k-means" hold? (with bootstrap intervals);
* ``python analysis/surrogate_quality.py STUDY_DIR … --out DIR`` — ridge vs XGBoost vs GNN.

See ``docs/cli.md`` for every flag.
"""
