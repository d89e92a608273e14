"""LocNet's model pieces (apps/loc.py): the architecture, the data-dependent
initialization, the per-layer step scales, the normalizer and the flip augmentation."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from minisnn.apps import loc
from minisnn.autodiff import Tensor, no_grad
from minisnn.layers import Conv2d, Dense, Neurons


@pytest.fixture
def tiny():
    cfg = loc.make_config("tiny")
    net = loc.build_locnet(cfg)
    x = np.random.default_rng(1).standard_normal((16, 3, *cfg.size)).astype(np.float32)
    return cfg, net, x


def test_architecture_is_conv_then_strided_conv_three_times_then_four_dense(tiny):
    cfg, net, x = tiny
    convs = [m for m in net if isinstance(m, Conv2d)]
    dense = [m for m in net if isinstance(m, Dense)]
    assert [c.stride for c in convs] == [1, 2] * 3
    assert len(dense) == 4 and dense[-1].w.shape[0] == 4
    assert not isinstance(list(net)[-1], Neurons)  # the last layer is linear
    with no_grad():
        assert net(Tensor(x)).shape == (16, 4)


def test_data_init_centres_each_layers_current(tiny):
    _, net, x = tiny
    loc.data_init(net, x, j_mean=2.5, j_std=1.5)
    layers = list(net)
    h = x
    with no_grad():
        for i, layer in enumerate(layers):
            z = layer(Tensor(h)).data
            if isinstance(layer, (Conv2d, Dense)) and i + 1 < len(layers) and isinstance(layers[i + 1], Neurons):
                axes = (0, 2, 3) if z.ndim == 4 else (0,)
                np.testing.assert_allclose(z.mean(axis=axes), 2.5, atol=1e-3)  # per channel
                assert z.std(axis=axes).mean() == pytest.approx(1.5, rel=1e-3)  # averaged over channels
            h = z
    assert h.std(axis=0).mean() == pytest.approx(0.1, rel=1e-3)  # the output layer starts small


def test_step_scales_are_weight_rms_over_the_first_layers(tiny):
    _, net, x = tiny
    loc.data_init(net, x)
    scales = loc.scale_steps_to_weights(net)
    weighted = [(i, m) for i, m in enumerate(net) if isinstance(m, (Conv2d, Dense))]
    assert list(scales) == [i for i, _ in weighted]
    rms = [float(np.sqrt(np.mean(m.w.data.astype(np.float64) ** 2))) for _, m in weighted]
    for (i, m), r in zip(weighted, rms):
        assert m.w.lr_scale == scales[i] == pytest.approx(r / rms[0], rel=1e-12)
        assert m.b.lr_scale == 1.0
    assert scales[weighted[0][0]] == 1.0
    # conversion deep-copies the net: the hybrid fine-tuning steps keep the scales
    clone = copy.deepcopy(net)
    assert [m.w.lr_scale for m in clone if isinstance(m, (Conv2d, Dense))] == [scales[i] for i, _ in weighted]


def test_normalizer_round_trip_and_statistics():
    rng = np.random.default_rng(0)
    images = rng.random((20, 3, 4, 5)).astype(np.float32)
    boxes = np.sort(rng.random((20, 4)), axis=1).astype(np.float32)
    norm = loc.Normalizer.fit(images, boxes)
    z = norm.targets(boxes)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, rtol=1e-4)
    np.testing.assert_allclose(norm.boxes(z), boxes, atol=1e-6)
    np.testing.assert_allclose(norm.images(images).mean(axis=(0, 2, 3)), 0, atol=1e-5)
    again = loc.Normalizer.from_dict(norm.to_dict())
    np.testing.assert_array_equal(again.box_std, norm.box_std)


def test_flip_mirrors_the_image_and_its_box():
    img = np.zeros((1, 1, 2, 10), np.float32)
    img[0, 0, :, 1:4] = 1  # an object over x in [0.1, 0.4)
    box = np.array([[0.1, 0.2, 0.4, 0.9]], np.float32)
    fimg, fbox = loc.flip_horizontal(img, box)
    np.testing.assert_array_equal(fimg[0, 0, 0], img[0, 0, 0, ::-1])
    np.testing.assert_allclose(fbox, [[0.6, 0.2, 0.9, 0.9]], atol=1e-7)
    # mirrored pixels 6..8 are the object: the flipped box covers exactly them
    assert np.flatnonzero(fimg[0, 0, 0]).tolist() == [6, 7, 8]
    back_img, back_box = loc.flip_horizontal(fimg, fbox)
    np.testing.assert_array_equal(back_img, img)
    np.testing.assert_allclose(back_box, box, atol=1e-7)


def test_rate_regularizer_covers_the_neuron_layers_from_the_chosen_one(tiny):
    cfg, net, _ = tiny
    neuron_layers = [str(i) for i, layer in enumerate(net) if isinstance(layer, Neurons)]
    assert len(neuron_layers) == 9
    assert loc.rate_regularizer(cfg, net).layers == neuron_layers
    deep = loc.make_config("tiny", rate_layers_from=5)
    assert loc.rate_regularizer(deep, net).layers == neuron_layers[5:]
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="rate_layers_from"):
            loc.make_config("tiny", rate_layers_from=bad)
    with pytest.raises(ValueError, match="--hybrid-method must be"):
        loc.make_config("tiny", hybrid_method="bptt")
