"""``python -m qua2.models.ship_digits [--retrain]``: (re-)make the shipped digits weights.

Writes both digits denoisers and the digits metric classifier, as trained from their default
recipes, to ``qua2/shipped_weights/`` with their checksums (:mod:`qua2.shipped`). By default
it takes them from the user cache (trained there once, on this machine); ``--retrain`` trains
them afresh. Every number documented for the digits studies depends on these files: re-making
them changes those numbers, so re-run the studies and update the docs in the same change.
"""

from __future__ import annotations

import argparse


def main() -> None:
    from qua2.metrics.classifier import classifier_key, load_digits_classifier
    from qua2.models.digits import SPECS, digits_key, load_digits, model_dir
    from qua2.shipped import ship

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--retrain", action="store_true", help="train instead of the cache")
    retrain = parser.parse_args().retrain
    for name, spec in SPECS.items():
        # An explicit path bypasses the shipped file: the user cache, or training into it.
        adapter = load_digits(name, model_dir(spec, spec.recipe), retrain=retrain)
        print(f"shipped {ship(name, adapter.module.state_dict(), digits_key(spec, spec.recipe))}")
    classifier = load_digits_classifier(0, shipped=False)
    path = ship("digits-classifier-s0", classifier.net.state_dict(),
                classifier_key(classifier.config),
                {"held_out_accuracy": classifier.held_out_accuracy})
    print(f"shipped {path}")


if __name__ == "__main__":
    main()
