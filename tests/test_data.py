"""Tests for tinyvae.data: IDX reading, splits, float batches, epoch order and downloading.

They read only the MNIST bundled with the package and files they write themselves; the download
tests talk to an HTTP server they start on 127.0.0.1.
"""

import gzip
import hashlib
import http.server
import socket
import struct
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyvae.data import (
    BINARIZE_MODES,
    MNIST_FILES,
    MNIST_MD5,
    DataError,
    Dataset,
    DownloadError,
    binarize_static,
    bundled_mnist_dir,
    download_mnist,
    epoch_permutation,
    load_dataset,
    load_split,
    read_idx,
    to_float,
)

# ---------------------------------------------------------------------------------------------
# Helpers that make IDX files


def idx_bytes(array, type_code=0x08):
    """The IDX encoding of a uint8 array: magic, big-endian sizes, row-major payload."""
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def write_idx(path, array, compress=True):
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def make_fake_mnist(folder, n_train=20, n_test=7, rows=4, cols=3, compress=True):
    """A tiny MNIST-shaped folder; pixel 0 of each training image holds its index, so rows are traceable."""
    rng = np.random.default_rng(123)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, rows, cols), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n, dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        image_name, label_name = MNIST_FILES[split]
        suffix = ".gz" if compress else ""
        write_idx(folder / (image_name + suffix), images, compress)
        write_idx(folder / (label_name + suffix), labels, compress)
        arrays[split] = (images, labels)
    return arrays


# ---------------------------------------------------------------------------------------------
# The bundled MNIST


def test_bundled_mnist_loads_60000_train_and_10000_test_digits():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = load_split(split)
        assert images.shape == (n, 784) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.uint8
        assert set(np.unique(labels)) == set(range(10))
        assert images.min() == 0 and images.max() == 255


def test_bundled_files_decompress_to_the_published_md5():
    for name, md5 in MNIST_MD5.items():
        with gzip.open(bundled_mnist_dir() / f"{name}.gz", "rb") as f:
            assert hashlib.md5(f.read()).hexdigest() == md5, name


def test_load_dataset_defaults_to_bundled_mnist_with_an_empty_validation_set():
    ds = load_dataset()
    assert (len(ds.train_x), len(ds.test_x)) == (60000, 10000)
    assert ds.val_x.shape == (0, 784) and ds.val_y.shape == (0,)
    assert ds.val_x.dtype == ds.val_y.dtype == np.uint8
    assert ds.input_dim == 784 and ds.image_shape == (28, 28)


# ---------------------------------------------------------------------------------------------
# read_idx


@settings(max_examples=60, deadline=None)
@given(
    array=hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=7)),
    compress=st.booleans(),
)
def test_read_idx_round_trips_any_uint8_array(tmp_path_factory, array, compress):
    path = write_idx(tmp_path_factory.mktemp("idx") / "a.idx", array, compress)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_read_idx_tells_gzip_from_raw_by_content_not_by_name(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    raw_named_gz = write_idx(tmp_path / "raw.gz", array, compress=False)
    gz_named_raw = write_idx(tmp_path / "gz-ubyte", array, compress=True)
    np.testing.assert_array_equal(read_idx(raw_named_gz), array)
    np.testing.assert_array_equal(read_idx(gz_named_raw), array)


def test_read_idx_refuses_a_file_whose_magic_does_not_start_with_two_zero_bytes(tmp_path):
    path = tmp_path / "bad-magic"
    path.write_bytes(b"\x00\x01\x08\x01" + struct.pack(">I", 2) + b"ab")
    with pytest.raises(DataError, match=r"bad-magic.*bad magic number 0x00010801.*two zero bytes"):
        read_idx(path)


@pytest.mark.parametrize("type_code, name", [(0x09, "int8"), (0x0D, "float32"), (0x42, "unknown")])
def test_read_idx_refuses_types_other_than_uint8(tmp_path, type_code, name):
    path = tmp_path / "floats.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8), type_code=type_code)))
    expected = rf"floats\.gz.*0x{type_code:02x} \({name}\).*expected 0x08 \(uint8\)"
    with pytest.raises(DataError, match=expected):
        read_idx(path)


@pytest.mark.parametrize("cut", [1, 8, 100])
def test_read_idx_refuses_a_truncated_gzip_stream(tmp_path, cut):
    blob = gzip.compress(idx_bytes(np.arange(5000, dtype=np.uint32).astype(np.uint8)))
    path = tmp_path / "cut.gz"
    path.write_bytes(blob[:-cut])
    with pytest.raises(DataError, match=r"cut\.gz.*gzip stream is truncated or corrupt"):
        read_idx(path)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_refuses_a_payload_shorter_than_the_header_promises(tmp_path, compress):
    path = tmp_path / "short"
    raw = idx_bytes(np.ones((3, 4), np.uint8))[:-5]
    path.write_bytes(gzip.compress(raw) if compress else raw)
    expected = r"short: payload too short.*\(3, 4\) needs exactly 12 bytes, found 7"
    with pytest.raises(DataError, match=expected):
        read_idx(path)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_refuses_trailing_bytes_after_the_payload(tmp_path, compress):
    path = tmp_path / "long"
    raw = idx_bytes(np.ones((3, 4), np.uint8)) + b"xyz"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    expected = r"long: payload has trailing bytes.*needs exactly 12 bytes, found 15"
    with pytest.raises(DataError, match=expected):
        read_idx(path)


def test_read_idx_refuses_a_header_cut_off_inside_the_sizes(tmp_path):
    path = tmp_path / "stub"
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 60000))
    with pytest.raises(DataError, match=r"stub.*declares 3 dimensions \(12 bytes of sizes\).*after 4"):
        read_idx(path)


def test_read_idx_refuses_a_gzip_header_promising_more_than_the_file_could_hold(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + struct.pack(">II", 2**31, 2**31)))
    with pytest.raises(DataError, match=r"huge\.gz.*needs 4611686018427387904 payload bytes"):
        read_idx(path)


def test_read_idx_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere-ubyte"):
        read_idx(tmp_path / "nowhere-ubyte")


# ---------------------------------------------------------------------------------------------
# load_split and load_dataset on folders the tests make


@pytest.mark.parametrize("compress", [True, False])
def test_load_split_reads_any_folder_with_the_mnist_names(tmp_path, compress):
    arrays = make_fake_mnist(tmp_path, compress=compress)
    for split in ("train", "test"):
        images, labels = load_split(split, tmp_path)
        np.testing.assert_array_equal(images, arrays[split][0].reshape(len(images), 12))
        np.testing.assert_array_equal(labels, arrays[split][1])


def test_load_split_refuses_image_and_label_counts_that_disagree(tmp_path):
    make_fake_mnist(tmp_path)
    write_idx(tmp_path / (MNIST_FILES["test"][1] + ".gz"), np.zeros(6, np.uint8))
    with pytest.raises(DataError, match=r"test split.*7 images.*but 6 labels.*expected equal counts"):
        load_split("test", tmp_path)


def test_load_split_refuses_images_that_are_not_three_dimensional(tmp_path):
    make_fake_mnist(tmp_path)
    write_idx(tmp_path / (MNIST_FILES["test"][0] + ".gz"), np.zeros((7, 12), np.uint8))
    with pytest.raises(DataError, match=r"t10k-images.*shape \(7, 12\); expected 3 dims"):
        load_split("test", tmp_path)


def test_load_split_says_how_to_get_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train-images-idx3-ubyte.*--data DIR.*download_mnist"):
        load_split("train", tmp_path)


def test_load_split_refuses_an_unknown_split():
    with pytest.raises(ValueError, match=r"unknown split 'val'.*'test', 'train'"):
        load_split("val")


def test_validation_split_is_seeded_disjoint_and_covers_the_training_set(tmp_path):
    arrays = make_fake_mnist(tmp_path, n_train=50)
    first = load_dataset(tmp_path, validation=10, seed=7)
    again = load_dataset(tmp_path, validation=10, seed=7)
    other = load_dataset(tmp_path, validation=10, seed=8)
    train_ids, val_ids = first.train_x[:, 0], first.val_x[:, 0]  # pixel 0 is the row's index
    assert (len(train_ids), len(val_ids)) == (40, 10)
    assert set(train_ids).isdisjoint(val_ids)
    assert sorted(np.concatenate([train_ids, val_ids])) == list(range(50))
    np.testing.assert_array_equal(first.val_x, again.val_x)
    assert not np.array_equal(first.val_x, other.val_x)
    np.testing.assert_array_equal(first.val_y, arrays["train"][1][val_ids])
    assert first.image_shape == (4, 3) and first.input_dim == 12


@pytest.mark.parametrize("bad", [-1, 50, 2.5, True, "10"])
def test_load_dataset_refuses_a_validation_size_outside_zero_to_n_train(tmp_path, bad):
    make_fake_mnist(tmp_path, n_train=50)
    with pytest.raises(ValueError, match=r"validation must be"):
        load_dataset(tmp_path, validation=bad)


def test_dataset_refuses_float_arrays_because_floats_are_made_per_batch():
    x, y = np.zeros((2, 4), np.float32), np.zeros(2, np.uint8)
    with pytest.raises(ValueError, match=r"expected uint8"):
        Dataset(x, y, x[:0], y[:0], x, y)


# ---------------------------------------------------------------------------------------------
# to_float and binarization


@pytest.mark.parametrize("mode", ["none", "static"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_float_maps_0_to_0_and_255_to_exactly_1_in_the_requested_dtype(mode, dtype):
    batch = np.arange(256, dtype=np.uint8).reshape(16, 16)
    x = to_float(batch, mode, dtype=dtype)
    assert x.dtype == dtype and x.shape == (16, 16)
    assert x[0, 0] == 0.0 and x[-1, -1] == 1.0 and np.all(np.diff(x.ravel()) > 0)
    np.testing.assert_allclose(x, batch / 255.0, rtol=1e-6)


def test_to_float_fills_the_buffer_it_is_given():
    batch = np.full((3, 5), 51, np.uint8)
    out = np.empty((3, 5), np.float32)
    assert to_float(batch, out=out) is out
    np.testing.assert_allclose(out, 0.2, rtol=1e-6)
    assert to_float(batch, "dynamic", np.random.default_rng(0), out=out) is out


def test_to_float_refuses_unknown_modes_missing_rng_and_mismatched_buffers():
    batch = np.zeros((2, 3), np.uint8)
    with pytest.raises(ValueError, match=r"unknown binarize mode 'stochastic'.*'none', 'static', 'dynamic'"):
        to_float(batch, "stochastic")
    with pytest.raises(ValueError, match=r"dynamic.*needs rng"):
        to_float(batch, "dynamic")
    with pytest.raises(ValueError, match=r"expects uint8 images.*got dtype float32"):
        to_float(batch.astype(np.float32))
    with pytest.raises(ValueError, match=r"out has shape \(3, 2\)"):
        to_float(batch, out=np.empty((3, 2), np.float32))
    assert BINARIZE_MODES == ("none", "static", "dynamic")


def test_dynamic_binarization_is_a_fresh_bernoulli_sample_with_the_grey_level_mean():
    images, _ = load_split("test")
    batch = images[:2000]
    rng = np.random.default_rng(0)
    first, second = to_float(batch, "dynamic", rng), to_float(batch, "dynamic", rng)
    assert first.dtype == np.float32 and set(np.unique(first)) == {0.0, 1.0}
    assert not np.array_equal(first, second)
    grey_mean = batch.mean() / 255.0
    # 1.57M Bernoulli pixels: the sample mean's standard error is below 3e-4.
    assert abs(first.mean() - grey_mean) < 2e-3
    assert np.all(first[batch == 0] == 0.0) and np.all(first[batch == 255] == 1.0)


def test_static_binarization_is_fixed_by_its_seed_and_passes_through_to_float():
    images, _ = load_split("test")
    once, again, other = binarize_static(images, 3), binarize_static(images, 3), binarize_static(images, 4)
    assert once.dtype == np.uint8 and once.shape == images.shape
    assert set(np.unique(once)) == {0, 255}
    np.testing.assert_array_equal(once, again)
    assert not np.array_equal(once, other)
    assert abs(once.mean() - images.mean()) < 0.5  # on with probability grey / 255
    np.testing.assert_array_equal(to_float(once, "static"), once / 255)


# ---------------------------------------------------------------------------------------------
# epoch_permutation


@settings(deadline=None)  # a permutation of 500 takes microseconds; a busy machine can still pause one past 200 ms
@given(n=st.integers(0, 500), seed=st.integers(0, 2**32), epoch=st.integers(0, 10_000))
def test_epoch_permutation_is_a_reproducible_permutation(n, seed, epoch):
    order = epoch_permutation(n, seed, epoch)
    assert order.dtype == np.int64
    np.testing.assert_array_equal(np.sort(order), np.arange(n))
    np.testing.assert_array_equal(order, epoch_permutation(n, seed, epoch))


def test_epoch_permutation_changes_from_epoch_to_epoch_and_seed_to_seed():
    base = epoch_permutation(1000, 0, 0)
    assert not np.array_equal(base, epoch_permutation(1000, 0, 1))
    assert not np.array_equal(base, epoch_permutation(1000, 1, 0))


# ---------------------------------------------------------------------------------------------
# download_mnist against a local server


class _Files(http.server.BaseHTTPRequestHandler):
    files = {}  # URL path -> bytes, set per server
    requests = None
    promised_extra = 0  # > 0: announce more bytes than are sent, like a dropped connection

    def do_GET(self):
        self.requests.append(self.path)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) + self.promised_extra))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def serve():
    """serve({name: bytes}) starts a server on 127.0.0.1 and returns (base URL, list of paths requested)."""
    servers = []

    def start(files, promised_extra=0):
        requests = []
        attributes = {"files": {f"/mnist/{k}": v for k, v in files.items()}, "requests": requests}
        handler = type("Handler", (_Files,), {**attributes, "promised_extra": promised_extra})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/mnist/", requests

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"


@pytest.fixture
def fake_release(tmp_path):
    """The fake MNIST as served files: ({name.gz: bytes}, {name: md5 of decompressed bytes})."""
    source = tmp_path / "source"
    make_fake_mnist(source)
    blobs = {p.name: p.read_bytes() for p in source.iterdir()}
    md5 = {name[:-3]: hashlib.md5(gzip.decompress(blob)).hexdigest() for name, blob in blobs.items()}
    return blobs, md5


def test_download_from_a_good_mirror_gives_a_loadable_folder(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    url, _ = serve(blobs)
    dest = download_mnist(tmp_path / "dest", mirrors=(url,), md5=md5, timeout=5)
    assert sorted(p.name for p in dest.iterdir()) == sorted(blobs)
    images, labels = load_split("train", dest)
    assert images.shape == (20, 12) and labels.shape == (20,)


def test_download_downloads_only_the_files_asked_for(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    url, _ = serve(blobs)
    only = ["t10k-labels-idx1-ubyte"]
    dest = download_mnist(tmp_path / "dest", mirrors=(url,), md5=md5, files=only, timeout=5)
    assert [p.name for p in dest.iterdir()] == ["t10k-labels-idx1-ubyte.gz"]


def test_download_skips_a_mirror_that_is_down(tmp_path, serve, fake_release, closed_port_url):
    blobs, md5 = fake_release
    url, _ = serve(blobs)
    dest = download_mnist(tmp_path / "dest", mirrors=(closed_port_url, url), md5=md5, timeout=5)
    assert load_split("test", dest)[0].shape == (7, 12)


def test_download_skips_a_mirror_serving_corrupt_bytes(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    corrupt = {name: gzip.compress(gzip.decompress(blob)[:-1] + b"!") for name, blob in blobs.items()}
    bad_url, bad_requests = serve(corrupt)
    good_url, _ = serve(blobs)
    dest = download_mnist(tmp_path / "dest", mirrors=(bad_url, good_url), md5=md5, timeout=5)
    assert len(bad_requests) == 4
    for name, blob in blobs.items():
        assert (dest / name).read_bytes() == blob


def test_download_error_names_every_mirror_and_why_it_failed(tmp_path, serve, fake_release, closed_port_url):
    blobs, md5 = fake_release
    wrong_url, _ = serve({name: gzip.compress(b"not mnist") for name in blobs})
    not_gzip_url, _ = serve({name: b"plain bytes" for name in blobs})
    empty_url, _ = serve({})
    mirrors = (closed_port_url, wrong_url, not_gzip_url, empty_url)
    with pytest.raises(DownloadError) as caught:
        download_mnist(tmp_path / "dest", mirrors=mirrors, md5=md5, timeout=5)
    message = str(caught.value)
    assert message.startswith("could not download") and "-ubyte.gz from any mirror" in message
    for mirror in mirrors:
        assert mirror in message
    assert "md5 of decompressed bytes is" in message
    assert "not a complete gzip file" in message
    assert "404" in message


def test_download_does_not_fetch_a_file_already_present_and_valid(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    url, requests = serve(blobs)
    dest = download_mnist(tmp_path / "dest", mirrors=(url,), md5=md5, timeout=5)
    assert len(requests) == 4
    download_mnist(dest, mirrors=(url,), md5=md5, timeout=5)
    assert len(requests) == 4


def test_download_replaces_a_present_file_whose_contents_are_wrong(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    url, requests = serve(blobs)
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"stale"))
    download_mnist(dest, mirrors=(url,), md5=md5, files=["t10k-labels-idx1-ubyte"], timeout=5)
    assert (dest / "t10k-labels-idx1-ubyte.gz").read_bytes() == blobs["t10k-labels-idx1-ubyte.gz"]


def test_download_leaves_no_partial_file_after_a_failed_md5(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    url, _ = serve({name: gzip.compress(b"wrong contents") for name in blobs})
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError):
        download_mnist(dest, mirrors=(url,), md5=md5, timeout=5)
    assert list(dest.iterdir()) == []


def test_download_leaves_no_partial_file_when_the_connection_drops(tmp_path, serve, fake_release):
    blobs, md5 = fake_release
    url, _ = serve(blobs, promised_extra=1000)
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match=r"IncompleteRead"):
        download_mnist(dest, mirrors=(url,), md5=md5, timeout=5)
    assert list(dest.iterdir()) == []


def test_download_refuses_a_file_without_a_known_md5(tmp_path):
    with pytest.raises(ValueError, match=r"no md5 known for \['mystery'\]"):
        download_mnist(tmp_path, mirrors=("http://127.0.0.1:9/",), md5={}, files=["mystery"])
