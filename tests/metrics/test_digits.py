import torch

from qua2.metrics.digits import digits_split, load_digits_images, tensor_digest


def test_images_shape_range_labels():
    images, labels = load_digits_images()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (1797,) and labels.dtype == torch.int64
    assert images.min() == -1.0 and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


def test_returns_fresh_tensors():
    a, _ = load_digits_images()
    a.zero_()
    b, _ = load_digits_images()
    assert b.min() == -1.0


def test_split_is_fixed_disjoint_and_stratified():
    train, held = digits_split()
    train2, held2 = digits_split()
    assert torch.equal(train, train2) and torch.equal(held, held2)
    assert len(set(train.tolist()) & set(held.tolist())) == 0
    assert len(train) + len(held) == 1797
    _, labels = load_digits_images()
    counts = torch.bincount(labels[held], minlength=10)
    assert counts.min() >= 34  # ~20% of every class (classes have 174–183 images)
    assert not torch.equal(digits_split(seed=1)[1], held)


def test_tensor_digest_depends_on_content_and_shape():
    x = torch.zeros(4, 1, 8, 8)
    assert tensor_digest(x) == tensor_digest(x.clone())
    assert tensor_digest(x) != tensor_digest(x.reshape(2, 2, 8, 8))
    y = x.clone()
    y[0, 0, 0, 0] = 1
    assert tensor_digest(x) != tensor_digest(y)
