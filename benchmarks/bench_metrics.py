"""Benchmark and honest calibration of qua2's digits metrics (results go to docs/metrics.md).

Prints:
- the digits classifier's clean held-out accuracy (and its training time, from the cache);
- the real-vs-real digits-FID floor: two disjoint random halves of the real digits, and 256
  real digits vs the remaining real digits as reference (what a perfect generator would score
  at a study's usual 256 images), as mean ± sd over random splits; noise-vs-real for scale;
- a noise ladder: 256 real digits with added Gaussian noise, scored against the other real
  digits and against their clean selves (scale for what a digits-FID change means);
- the time to score 256 images (digits_fid + class_accuracy + psnr/ssim/mse);
- with ``--models``: the seed-to-seed spread of digits-FID / class accuracy of the trained
  digits models' images (disjoint seed sets of 256, 20 DDIM steps) and the FP-vs-FP check
  (the same seeds twice must give PSNR = ∞).

Run: ``OMP_WAIT_POLICY=PASSIVE python benchmarks/bench_metrics.py [--splits 10] [--models]``
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from qua2.metrics import FrechetScorer, MetricSuite, load_digits_classifier, load_digits_images


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f} (n={len(values)})"


def real_vs_real(splits: int, n_test: int = 256) -> None:
    """digits-FID between disjoint random subsets of the real digits."""
    clf = load_digits_classifier()
    images, _ = load_digits_images()
    halves, at_256, noise_256 = [], [], []
    for seed in range(splits):
        perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        half = len(images) // 2
        halves.append(FrechetScorer(clf, images[perm[:half]], use_cache=False)(images[perm[half:]]))
        rest = FrechetScorer(clf, images[perm[n_test:]], use_cache=False)
        at_256.append(rest(images[perm[:n_test]]))
        noise = torch.rand(n_test, 1, 8, 8, generator=torch.Generator().manual_seed(10_000 + seed))
        noise_256.append(rest(noise * 2 - 1))
    print(f"real-vs-real digits-FID, two halves ({half} vs {len(images) - half}): "
          f"{_mean_sd(halves)}")
    print(f"real-vs-real digits-FID, {n_test} real vs the other {len(images) - n_test}: "
          f"{_mean_sd(at_256)}")
    print(f"uniform-noise-vs-real digits-FID, {n_test} images: {_mean_sd(noise_256)}")


def noise_ladder(n_test: int = 256, sigmas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)) -> None:
    """How digits-FID, class accuracy, PSNR and SSIM move as real digits get noisier."""
    clf = load_digits_classifier()
    images, labels = load_digits_images()
    perm = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))
    suite = MetricSuite({"digits_fid": FrechetScorer(clf, images[perm[n_test:]], use_cache=False)},
                        classifier=clf)
    x, y = images[perm[:n_test]], labels[perm[:n_test]]
    gen = torch.Generator().manual_seed(1)
    for sigma in (0.0, *sigmas):
        noisy = (x + sigma * torch.randn(x.shape, generator=gen)).clamp(-1, 1)
        out = suite.score(noisy, labels=y, fp_images=x)
        print(f"  real + N(0, {sigma:.2f}²) noise, {n_test} images: digits_fid "
              f"{out['digits_fid']:.2f}, class_accuracy {out['class_accuracy']:.3f}, "
              f"psnr {out['psnr']:.2f}, ssim {out['ssim']:.4f}")


def scoring_time(repeats: int = 5, n: int = 256) -> None:
    """Wall time of one full digits score of n images with a warm suite."""
    suite = MetricSuite.for_digits()
    images, labels = load_digits_images()
    x, y = images[:n], labels[:n]
    fp = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    suite.score(x, labels=y, fp_images=fp)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        suite.score(x, labels=y, fp_images=fp)
        times.append(time.perf_counter() - start)
    print(f"time to score {n} images (digits_fid, class_accuracy, psnr, ssim, mse): "
          f"median {statistics.median(times) * 1000:.1f} ms over {repeats} runs, "
          f"torch threads {torch.get_num_threads()}")


def seed_spread(family: str, sets: int, n: int = 256, steps: int = 20) -> None:
    """Spread of digits-FID / class accuracy across disjoint seed sets of a trained model."""
    from qua2.models import load_model

    model = load_model(family)
    suite = MetricSuite.for_digits()
    labels = [i % 10 for i in range(n)]
    fids, accs = [], []
    for k in range(sets):
        seeds = list(range(k * n, (k + 1) * n))
        start = time.perf_counter()
        images = model.generate(labels, seeds, steps=steps)
        gen_s = time.perf_counter() - start
        out = suite.score(images, labels=labels)
        fids.append(out["digits_fid"])
        accs.append(out["class_accuracy"])
        print(f"  {family} seeds {seeds[0]}–{seeds[-1]}: digits_fid {out['digits_fid']:.3f}, "
              f"class_accuracy {out['class_accuracy']:.4f} (generated in {gen_s:.1f} s)")
    again = model.generate(labels, list(range(n)), steps=steps)
    first = model.generate(labels, list(range(n)), steps=steps)
    fp_vs_fp = suite.score(again, fp_images=first)
    print(f"{family}: digits_fid {_mean_sd(fids)}; class_accuracy {_mean_sd(accs)}; "
          f"FP-vs-FP same seeds: psnr {fp_vs_fp['psnr']}, ssim {fp_vs_fp['ssim']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--splits", type=int, default=10, help="random real-vs-real splits")
    parser.add_argument("--models", nargs="*", default=None,
                        help="also measure seed-to-seed spread of these families "
                             "(default when given without names: digits-dit digits-unet)")
    parser.add_argument("--seed-sets", type=int, default=5, help="disjoint seed sets of 256")
    args = parser.parse_args()
    clf = load_digits_classifier()
    print(f"digits classifier {clf.id}: clean held-out accuracy {clf.held_out_accuracy:.4f} "
          f"(359 held-out digits)")
    real_vs_real(args.splits)
    noise_ladder()
    scoring_time()
    if args.models is not None:
        for family in args.models or ["digits-dit", "digits-unet"]:
            seed_spread(family, args.seed_sets)


if __name__ == "__main__":
    main()
