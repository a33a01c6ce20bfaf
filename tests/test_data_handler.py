import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_crnn.config import Params
from tf_crnn.data.image_converter import PADDING_VALUE, get_resized_width, padding_inputs_width, resize_image
from tf_crnn.training.pipeline import (
    augment_data,
    dataset_generator,
    random_elastic,
    random_stretch,
    random_stroke_width,
)


def test_resized_width_agrees_between_python_and_graph():
    for w, h in [(100, 32), (7, 50), (5000, 40), (33, 17), (1, 140)]:
        py = get_resized_width(w, h, 32, 800)
        tf_value = int(get_resized_width(tf.constant(w), tf.constant(h), 32, 800))
        assert py == tf_value
        image = tf.zeros([h, w, 1], tf.uint8)
        resized, width = resize_image(image, 32, 800)
        assert resized.shape == (32, py, 1) and int(width) == py
    assert get_resized_width(5000, 40, 32, 800) == 800


def test_padding_adds_white_paper_only():
    image = np.full((4, 3, 1), 230, np.uint8)
    image[1:3, 1] = 10  # ink in the middle, paper on the border
    padded = padding_inputs_width(tf.constant(image), 8).numpy()
    assert padded.shape == (4, 8, 1)
    assert (padded[:, 3:] == PADDING_VALUE).all()
    np.testing.assert_array_equal(padded[:, :3], image)
    assert padding_inputs_width(tf.constant(image), 2).shape == (4, 3, 1)


def test_augmentation_changes_the_image_and_cuts_no_ink():
    params = Params(input_shape=[32, 140], data_augmentation_max_rotation=0.05, data_augmentation_max_slant=0.3)
    image = np.full((32, 100, 1), 240, np.uint8)
    image[10:22, 30:70] = 20  # a block of ink well inside the paper
    ink_area = 12 * 40
    tf.random.set_seed(0)
    for _ in range(10):
        out = augment_data(tf.constant(image), params).numpy()
        assert out.shape[0] == 32 and 100 <= out.shape[1] <= 140 and out.dtype == np.uint8
        assert out.shape != image.shape or not np.array_equal(out, image), "augmentation left the image as it was"
        paper, ink = np.median(out[0]), out.min()
        dark = out < (int(paper) + int(ink)) / 2
        assert paper - ink > 100  # the contrast jitter keeps ink readable
        assert 0.8 * ink_area <= dark.sum() <= 1.25 * ink_area  # no ink cut or smeared away
        assert not (dark[0].any() or dark[-1].any() or dark[:, 0].any() or dark[:, -1].any())


def test_stroke_width_and_elastic_distortion():
    image = np.full((32, 100, 1), 240, np.uint8)
    image[10:22, 30:70] = 20
    ink_area = 12 * 40
    tf.random.set_seed(1)
    areas = {int((random_stroke_width(tf.constant(image), 2).numpy() < 130).sum()) for _ in range(20)}
    assert min(areas) < ink_area < max(areas)  # strokes both thinned and thickened
    assert max(areas) <= (12 + 2) * (40 + 2) and min(areas) >= (12 - 2) * (40 - 2)  # by at most 2 px
    out = random_elastic(tf.constant(image), 3.0, tf.constant([240], tf.uint8)).numpy()
    assert out.shape == image.shape and not np.array_equal(out, image)
    assert 0.7 * ink_area <= (out < 130).sum() <= 1.4 * ink_area  # moved, not erased
    params = Params(input_shape=[32, 140], data_augmentation_stroke=1, data_augmentation_elastic=2.0)
    assert augment_data(tf.constant(image), params).shape[0] == 32


def test_dataset_batches_pad_to_their_own_width(tmp_path, lookup_file):
    rows = []
    for i, w in enumerate([40, 60, 200, 90]):
        Image.new("L", (w, 32), 40).save(tmp_path / f"{i}.png")
        rows.append(f"{tmp_path / f'{i}.png'};|a|b|")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    params = Params(input_shape=[32, 800], lookup_alphabet_file=str(lookup_file({"a": 1, "b": 2})))
    ds = dataset_generator(tmp_path / "d.csv", params, batch_size=2, shuffle=False, num_epochs=1)
    batches = list(ds)
    assert [b[0]["images"].shape[2] for b in batches] == [60, 200]
    assert batches[0][0]["widths"].numpy().tolist() == [40, 60]
    # The batch pads as padding_inputs_width does (the SavedModel's padding).
    first = batches[0][0]["images"][0]
    np.testing.assert_array_equal(first.numpy(), padding_inputs_width(first[:, :40], 60).numpy())
    assert batches[0][1].numpy().tolist() == [[1, 2], [1, 2]]
    # Validation's batches: every line once, in width buckets (200 px alone, not padding 90 px).
    bucketed = list(
        dataset_generator(tmp_path / "d.csv", params, batch_size=2, shuffle=False, num_epochs=1, bucket=True)
    )
    assert sorted(w for b in bucketed for w in b[0]["widths"].numpy().tolist()) == [40, 60, 90, 200]
    assert sorted(b[0]["images"].shape[2] for b in bucketed) == [60, 90, 200]
    # No autotuning thread: it held a finished validation iterator's deletion for seconds.
    assert ds.options().autotune.enabled is False
    fixed = Params(input_shape=[32, 800], bucket_by_width=False, lookup_alphabet_file=params.lookup_alphabet_file)
    batch = next(iter(dataset_generator(tmp_path / "d.csv", fixed, batch_size=2, shuffle=False)))
    assert batch[0]["images"].shape[2] == 800


def test_an_image_gone_or_broken_after_preprocessing_is_skipped(tmp_path, lookup_file):
    rows = []
    for i in range(4):
        Image.new("L", (50 + 10 * i, 32), 255).save(tmp_path / f"{i}.png")
        rows.append(f"{tmp_path / f'{i}.png'};|a|b|")
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "1.png").unlink()
    (tmp_path / "2.png").write_bytes(b"broken")
    params = Params(input_shape=[32, 800], lookup_alphabet_file=str(lookup_file({"a": 1, "b": 2})))
    ds = dataset_generator(tmp_path / "d.csv", params, batch_size=8, shuffle=False, num_epochs=1)
    (batch,) = list(ds)
    assert batch[0]["widths"].numpy().tolist() == [50, 80]


def test_stretch_changes_the_width_within_its_bounds():
    image = np.full((32, 100, 1), 240, np.uint8)
    image[10:22, 30:70] = 20
    tf.random.set_seed(2)
    widths = {random_stretch(tf.constant(image), 0.2, 110).shape[1] for _ in range(30)}
    assert min(widths) < 95 and max(widths) > 105  # narrower and wider
    assert 80 <= min(widths) and max(widths) <= 110  # by at most 20%, never past the limit
    out = random_stretch(tf.constant(image), 0.2, 140).numpy()
    assert out.shape[0] == 32 and out.dtype == np.uint8
    assert (out < 130).sum() == pytest.approx(12 * 40 * out.shape[1] / 100, rel=0.1)  # ink scaled with the width


@pytest.mark.parametrize("mode", ["none", "disk"])
def test_streamed_and_disk_cached_sets_yield_what_the_memory_cache_yields(digits_data, tmp_path, mode):
    """cache_images: the same samples whatever holds them; streamed, memory does not hold the set."""
    from tf_crnn.data.preprocessing import preprocess_csv
    from tf_crnn.training.pipeline import dataset_generator

    params = Params(
        lookup_alphabet_file=str(digits_data["alphabet"]), input_shape=(32, 256), cnn_features_list=[8, 8],
        cnn_kernel_size=[3, 3], cnn_stride_size=[1, 1], cnn_pool_size=[2, 2], cnn_batch_norm=[False, False],
    )  # fmt: skip
    clean = tmp_path / "train.csv"
    preprocess_csv(digits_data["train"], params, clean)

    def samples(cache):
        ds = dataset_generator(
            str(clean), params, batch_size=16, shuffle=True, num_epochs=2, cache=cache, cache_file=tmp_path / "c"
        )
        seen = []
        for features, labels in ds:
            for image, width, label in zip(features["images"].numpy(), features["widths"].numpy(), labels.numpy()):
                seen.append((tuple(label[label > 0]), int(width), int(image[:, :width].sum())))
        return sorted(seen)

    memory = samples("memory")
    assert len(memory) == 2 * 320
    assert samples(mode) == memory


def test_auto_cache_keeps_a_small_set_in_memory_and_a_large_one_on_disk(digits_data, tmp_path, monkeypatch):
    import tf_crnn.training.pipeline as data_handler
    from tf_crnn.data.preprocessing import preprocess_csv

    params = Params(lookup_alphabet_file=str(digits_data["alphabet"]), input_shape=(32, 256))
    clean = tmp_path / "train.csv"
    preprocess_csv(digits_data["train"], params, clean)
    mode, size = data_handler.choose_cache(params, clean)
    assert mode == "memory" and 320 * 32 * 20 < size < 320 * 32 * 256
    monkeypatch.setattr(data_handler, "MEMORY_CACHE_LIMIT", size - 1)
    assert data_handler.choose_cache(params, clean)[0] == "disk"
    forced = Params(lookup_alphabet_file=str(digits_data["alphabet"]), input_shape=(32, 256), cache_images="none")
    assert data_handler.choose_cache(forced, clean)[0] == "none"


@pytest.mark.parametrize("fmt", ["GIF", "BMP"])
def test_gif_and_bmp_decode_to_the_grey_pillow_reads(tmp_path, fmt):
    import io

    from tf_crnn.data.image_converter import decode_image
    from tf_crnn.data.images import open_image

    rng = np.random.default_rng(0)
    colours = Image.fromarray(rng.integers(0, 256, (20, 60, 3), dtype=np.uint8), "RGB")
    if fmt == "GIF":
        colours = colours.quantize(64)  # a palette image, as GIFs are
    buffer = io.BytesIO()
    colours.save(buffer, fmt)
    (tmp_path / "line").write_bytes(buffer.getvalue())
    grey = decode_image(tf.constant(buffer.getvalue()), 1).numpy()[..., 0]
    assert grey.shape == (20, 60)
    np.testing.assert_array_equal(grey, np.asarray(open_image(tmp_path / "line")))


@pytest.mark.parametrize("mode", ["memory", "disk"])
def test_a_cached_set_reaches_training_mixed_not_in_file_order(tmp_path, lookup_file, monkeypatch, mode):
    """Sources concatenated in one CSV (a base model's corpora) are not met one after another."""
    import tf_crnn.training.pipeline as data_handler

    monkeypatch.setattr(data_handler, "SHUFFLE_BUFFER", 4)
    Image.new("L", (40, 32), 255).save(tmp_path / "x.png")
    rows = [f"{tmp_path / 'x.png'};|a|"] * 30 + [f"{tmp_path / 'x.png'};|b|"] * 30
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    params = Params(input_shape=[32, 800], lookup_alphabet_file=str(lookup_file({"a": 1, "b": 2})), seed=3)
    ds = dataset_generator(
        tmp_path / "d.csv", params, batch_size=10, shuffle=True, num_epochs=1, cache=mode, cache_file=tmp_path / "c"
    )
    first = next(iter(ds))[1].numpy()[:, 0].tolist()
    assert 2 <= first.count(2) <= 8, first


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_upright_size_is_the_size_open_image_turns_a_page_to(tmp_path, orientation):
    from tf_crnn.data.images import open_image, upright_size

    exif = Image.Exif()
    exif[0x0112] = orientation  # EXIF Orientation
    Image.new("L", (60, 20), 200).save(tmp_path / "page.jpg", exif=exif)
    assert upright_size(tmp_path / "page.jpg") == open_image(tmp_path / "page.jpg", upright=True).size
    assert upright_size(tmp_path / "page.jpg") == ((20, 60) if orientation in (6, 8) else (60, 20))
