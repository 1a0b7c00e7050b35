import textwrap

import pytest

TINY_STUDY = textwrap.dedent("""
    name: tiny-dit
    model: {family: digits-dit, options: {train_steps: 30}}
    sampler: {steps: 3, batch_size: 64}
    images_per_config: 32
    verification_images: 40
    search_space: {methods: [uaq, kmeans_a], bits: [3, 4]}
    config_sampler: {num_configs: 6}
""")


@pytest.fixture
def tiny_study_yaml(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_STUDY)
    return path
