"""Learning from a larger model (``distill_from``), and the cheap blocks a student is made of
(``cnn_separable``)."""

import h5py
import numpy as np
import pytest
import tensorflow as tf
from conftest import tiny_params

from tf_crnn.config import ConfigError
from tf_crnn.network.layers import build_network, fold_batch_norm
from tf_crnn.reading.model import PredictionModel
from tf_crnn.training.distill import DistillationLoss
from tf_crnn.training.run import train

STUDENT = dict(cnn_features_list=[8, 16], cnn_separable=[False, True], rnn_units=[24], n_epochs=3, steps_per_epoch=40)


def test_the_distillation_loss_is_each_lines_kl_divergence_summed_over_its_frames():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(0, 2, (2, 3, 5, 4)).astype(np.float32)

    def kl(t, s, temperature):
        p = tf.nn.softmax(t / temperature).numpy()
        q = tf.nn.softmax(s / temperature).numpy()
        return (p * np.log(p / q)).sum(axis=(1, 2)) * temperature**2

    for temperature in (1.0, 2.0):
        loss = DistillationLoss(temperature, reduction=None)
        np.testing.assert_allclose(loss(teacher, student).numpy(), kl(teacher, student, temperature), rtol=1e-5)
        np.testing.assert_allclose(loss(teacher, teacher).numpy(), 0.0, atol=1e-5)
    # Logits differing by a constant per frame give the same probabilities: nothing to learn.
    assert DistillationLoss()(teacher, teacher + 3.0).numpy() == pytest.approx(0.0, abs=1e-5)


def test_a_separable_network_folds_its_normalisation_and_reads_alike(digits_data, tmp_path):
    params = tiny_params(digits_data, tmp_path, cnn_separable=[False, True], cnn_batch_norm=[True, True])
    network = build_network(params, rnn_dropout=0.0)
    assert [type(network.get_layer(f"conv_block_{i}").conv).__name__ for i in (0, 1)] == ["Conv2D", "SeparableConv2D"]
    rng = np.random.default_rng(1)
    for layer in network.layers:  # normalisation statistics other than the initial ones
        if getattr(layer, "bn", None) is not None:
            layer.bn.set_weights([rng.uniform(0.5, 2, w.shape).astype(np.float32) for w in layer.bn.get_weights()])
    inputs = {"images": rng.uniform(0, 255, (2, 32, 96, 1)).astype(np.float32), "widths": np.array([96, 60], np.int32)}
    folded = fold_batch_norm(network, params)
    assert not any(getattr(layer, "bn", None) for layer in folded.layers)
    np.testing.assert_allclose(folded(inputs).numpy(), network(inputs, training=False).numpy(), rtol=1e-4, atol=1e-4)


def mean_kl(teacher_export, student_export, paths) -> float:
    """How far a student's frame probabilities are from its teacher's on ``paths``."""
    t, lengths = PredictionModel(teacher_export).log_probs(paths)
    s, _ = PredictionModel(student_export).log_probs(paths)
    frames = np.arange(t.shape[1])[None, :] < lengths[:, None]
    return float((np.exp(t) * (t - s)).sum(-1)[frames].mean())


def test_a_student_learns_its_teachers_probabilities_and_is_saved_alone(trained, digits_data, tmp_path):
    _, teacher = trained
    plain = train(tiny_params(digits_data, tmp_path / "plain", **STUDENT), verbose=0)
    taught = train(
        tiny_params(
            digits_data, tmp_path / "taught", distill_from=str(teacher.export_path), distill_weight=5.0, **STUDENT
        ),
        verbose=0,
    )
    paths = [str(p) for p in sorted((digits_data["eval"].parent / "images").glob("eval_*.png"))]
    # The same steps from the same start: the one taught frame by frame is nearer its teacher.
    assert mean_kl(teacher.export_path, taught.export_path, paths) < 0.5 * mean_kl(
        teacher.export_path, plain.export_path, paths
    )

    def variables(path):
        with h5py.File(path) as f:
            names = []
            f.visit(names.append)
            return sorted(n for n in names if isinstance(f[n], h5py.Dataset) and "optimizer" not in n)

    # The teacher is in no checkpoint or export: the student's files hold what a plain run's hold.
    for name in ("checkpoints/best.weights.h5", f"export/{taught.export_path.name}/model.weights.h5"):
        plain_name = name.replace(taught.export_path.name, plain.export_path.name)
        assert variables(tmp_path / "taught" / name) == variables(tmp_path / "plain" / plain_name)


def test_a_teacher_that_cannot_teach_is_refused_before_anything_is_written(trained, digits_data, tmp_path):
    _, teacher = trained
    export = str(teacher.export_path)
    cases = [
        (dict(distill_from=str(tmp_path / "nowhere")), "distill_from: "),
        (
            dict(distill_from=export, input_shape=[48, 128]),
            "reads images 32 px high with 1 channel(s), this network 48",
        ),
        (dict(distill_from=export, cnn_pool_size=[2, 2]), "frames, this network into"),
    ]
    for i, (overrides, expected) in enumerate(cases):
        out = tmp_path / f"refused{i}"
        with pytest.raises(ConfigError) as e:
            train(tiny_params(digits_data, out, **overrides), verbose=0)
        assert expected in str(e.value) and "\n" not in str(e.value), str(e.value)
        assert not out.exists()
    alphabet = tmp_path / "alphabet.json"
    alphabet.write_text('{"0": 1, "1": 2, "x": 3}', encoding="utf-8")
    data = {**digits_data, "alphabet": alphabet}
    with pytest.raises(ConfigError, match=r"does not know 1 unit\(s\) of this run's alphabet: 'x'"):
        train(tiny_params(data, tmp_path / "refused-x", distill_from=export), verbose=0)
    with pytest.raises(ConfigError, match="cnn_separable: has 1 entries but cnn_features_list has 2"):
        tiny_params(digits_data, tmp_path / "y", cnn_separable=[True])
