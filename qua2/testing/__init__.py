"""Test fixtures that ship with qua2: tiny random models and synthetic studies.

Kept apart from the production packages (nothing in them imports this package), yet
installed, because users rely on them too: ``qua2 graph --tiny FAMILY`` and ``--full-size``
draw the models of :mod:`qua2.testing.tiny_models`, the benchmarks build full-size
architectures on the meta device from it, and notebooks and downstream tests can build a tiny
pipeline (:mod:`qua2.testing.tiny_pipelines`) or a study with a known answer
(:mod:`qua2.testing.synthetic_study`) without weights or downloads.
"""
