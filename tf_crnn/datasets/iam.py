"""The IAM Handwriting Database: download, verify, extract, and convert to the project's format.

The database needs a free account (https://fki.tic.heia-fr.ch/databases/iam-handwriting-database);
credentials come from ``IAM_USER`` / ``IAM_PWD``. The server logs in with a form POST of
``email`` and ``password`` to ``<base>/login`` and keeps a session cookie; older mirrors
(``fki.inf.unibe.ch``) used HTTP basic authentication (``auth="basic"``).

Layout after :func:`prepare_iam`::

    download_dir/lines.tgz, ascii.tgz, xml.tgz, largeWriterIndependentTextLineRecognitionTask.zip
    download_dir/lines/ ascii/ xml/ largeWriterIndependentTextLineRecognitionTask/   (extracted)
    generated_data_dir/generated_csv/{trainset,validationset1,validationset2,testset}.csv
    generated_data_dir/generated_alphabet/iam_alphabet_lookup.json
    generated_data_dir/config.json, import_report.csv

Downloads go to ``<name>.part`` and are resumed from there (HTTP Range); an archive gets
its final name only once it is complete and verified, and a folder is extracted under a
temporary name and renamed when whole. So whatever has its final name is complete, and
a second run skips it.
"""

from __future__ import annotations

import gzip
import logging
import os
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import requests
import urllib3

from tf_crnn.alphabet import Alphabet, normalize
from tf_crnn.artifacts import CONFIG_FILENAME
from tf_crnn.atomic import atomic_dir, write_json
from tf_crnn.config import Params, relative_paths
from tf_crnn.datasets import IAM_BASE_URL as DEFAULT_BASE_URL
from tf_crnn.datasets.importers import write_import_report
from tf_crnn.errors import CredentialsError, IamError
from tf_crnn.records import join_units, write_csv_rows

logger = logging.getLogger(__name__)

SPLIT_TASK = "largeWriterIndependentTextLineRecognitionTask"
SPLITS = ("trainset", "validationset1", "validationset2", "testset")
SEGMENTATION_FLAGS = ("all", "ok")


@dataclass(frozen=True)
class Archive:
    name: str
    url_path: str
    folder: str
    must_hold: str
    """A member name suffix that proves the archive is the right one."""


ARCHIVES = (
    Archive("lines.tgz", "DBs/iamDB/data/lines.tgz", "lines", ".png"),
    Archive("ascii.tgz", "DBs/iamDB/data/ascii.tgz", "ascii", "lines.txt"),
    Archive("xml.tgz", "DBs/iamDB/data/xml.tgz", "xml", ".xml"),
    Archive(f"{SPLIT_TASK}.zip", f"static/zip/{SPLIT_TASK}.zip", SPLIT_TASK, "trainset.txt"),
)

# Recommended for IAM lines (handwriting, ~1700x90 px scans, up to ~90 characters).
# Chosen from the lines benchmark's network, scaled up for handwriting; not measured on IAM here.
IAM_CONFIG = {
    "input_shape": [64, 1600],
    "input_channels": 1,
    "cnn_features_list": [32, 64, 96, 128, 160],
    "cnn_kernel_size": [3, 3, 3, 3, 3],
    "cnn_stride_size": [1, 1, 1, 1, 1],
    "cnn_pool_size": [2, 2, [2, 1], [2, 1], [2, 1]],
    "cnn_batch_norm": [True, True, True, True, True],
    "rnn_units": [256, 256],
    "rnn_dropout": 0.25,
    "max_chars_per_string": 100,
    "data_augmentation": True,
    "n_epochs": 100,
    "train_batch_size": 16,
    "eval_batch_size": 32,
    "learning_rate": 0.001,
    "learning_rate_schedule": "cosine",
    "early_stopping_patience": 15,
    "evaluate_every_epoch": 1,
    "save_interval": 10,
}


@dataclass
class PrepareResult:
    counts: dict[str, int]
    files: dict[str, Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    downloaded: list[str] = field(default_factory=list)
    """Archives fetched by this run (the others were already complete)."""


def credentials_from_env() -> tuple[str, str]:
    user, password = os.environ.get("IAM_USER"), os.environ.get("IAM_PWD")
    if not user or not password:
        raise CredentialsError(
            "IAM_USER and IAM_PWD are not set: export the e-mail and password of your IAM account "
            "(free after registering at https://fki.tic.heia-fr.ch)"
        )
    return user, password


class IamDownloader:
    """Logs in once, then downloads archives with resume, retries and verification.

    Args:
        base_url: server root, e.g. ``https://fki.tic.heia-fr.ch``.
        user, password: account credentials.
        auth: ``form`` (POST to ``<base>/login``, session cookie) or ``basic`` (HTTP basic).
        retries: new attempts, each resuming, after a dropped connection or a 5xx answer.
        timeout: seconds without data before a connection counts as dropped.
        progress: draw a progress bar on stderr.
    """

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        auth: str = "form",
        retries: int = 3,
        timeout: float = 60.0,
        progress: bool = True,
    ):
        if auth not in ("form", "basic"):
            raise ValueError(f"auth: must be form or basic, got {auth!r}")
        self.base_url = base_url.rstrip("/")
        self.user, self.password, self.auth = user, password, auth
        self.retries, self.timeout, self.progress = retries, timeout, progress
        self.session = requests.Session()
        self._logged_in = False

    def login(self) -> None:
        if self._logged_in:
            return
        if self.auth == "basic":
            self.session.auth = (self.user, self.password)
        else:
            url = f"{self.base_url}/login"
            try:
                response = self.session.post(
                    url, data={"email": self.user, "password": self.password}, timeout=self.timeout
                )
            except requests.RequestException as e:
                raise IamError(f"cannot reach {url} ({_reason(e)}); check the network or --base-url") from None
            if response.status_code in (401, 403):
                raise CredentialsError(
                    f"login to {url} refused (HTTP {response.status_code}): check IAM_USER and IAM_PWD"
                )
            if response.status_code >= 400:
                raise IamError(f"login to {url} failed: HTTP {response.status_code}; try again later")
        self._logged_in = True

    def fetch(self, archive: Archive, download_dir: Path) -> bool:
        """Makes ``download_dir/archive.name`` complete and verified; False if it already was."""
        final = download_dir / archive.name
        if final.is_file():
            try:
                verify_archive(final, archive)
                logger.info("%s: already downloaded and complete", final)
                return False
            except IamError as e:
                logger.warning("%s; downloading it again", e)
                final.unlink()
        self.login()
        part = final.with_name(final.name + ".part")
        url = f"{self.base_url}/{archive.url_path}"
        logger.info("Downloading %s%s", url, f" (resuming at {_size(part)})" if part.is_file() else "")
        for attempt in range(self.retries + 1):
            try:
                self._download(url, part, archive.name)
                break
            except _Retryable as e:
                if attempt == self.retries:
                    raise IamError(
                        f"download of {archive.name} from {url} failed: {e}; the {_size(part)} received are "
                        f"kept in {part}: run the same command again to resume"
                    ) from None
                logger.warning("%s: %s; resuming (attempt %d of %d)", archive.name, e, attempt + 2, self.retries + 1)
                time.sleep(min(2**attempt, 30))
        try:
            verify_archive(part, archive)
        except IamError as e:
            part.unlink()
            raise IamError(f"{e}; the download was removed: run the same command again to fetch it anew") from None
        os.replace(part, final)
        return True

    def _download(self, url: str, part: Path, name: str) -> None:
        offset = part.stat().st_size if part.is_file() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with self.session.get(url, headers=headers, stream=True, timeout=self.timeout) as response:
                if response.status_code == 416 and offset:
                    return  # nothing left to fetch: the .part is whole, verification tells
                self._check(response, url, name)
                if response.status_code != 206:
                    offset = 0  # the server ignored the Range: start over
                elif not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    part.unlink()
                    raise _Retryable(f"the server resumed elsewhere ({response.headers.get('Content-Range')})")
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                with open(part, "ab" if offset else "wb") as f, _progress(self.progress, name, total, offset) as bar:
                    # Raw bytes (a Range continues the stored bytes), one socket read at a time
                    # so that what arrived before a drop is kept, unlike iter_content's buffer.
                    while chunk := response.raw.read1(1 << 16, decode_content=False):
                        try:
                            f.write(chunk)
                        except OSError as e:
                            raise IamError(f"cannot write {part} ({e.strerror}); make room and run again") from None
                        bar.update(len(chunk))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
            raise _Retryable(f"connection dropped ({_reason(e)})") from None
        if total is not None and part.stat().st_size < total:
            raise _Retryable(f"connection closed at {_size(part)} of {total} bytes")

    def _check(self, response: requests.Response, url: str, name: str) -> None:
        status = response.status_code
        login_page = response.url.rstrip("/").endswith("/login") or "text/html" in response.headers.get(
            "Content-Type", ""
        )
        if status in (401, 403) or (status < 400 and login_page):
            raise CredentialsError(
                f"the server did not give {name} ({url} answered "
                f"{'HTTP ' + str(status) if status >= 400 else 'with a login page'}): the login failed; "
                "check IAM_USER and IAM_PWD, and that the account is activated"
            )
        if status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status >= 400:
            raise IamError(f"{url}: HTTP {status}; check --base-url")


class _Retryable(Exception):
    pass


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(show: bool, name: str, total: int | None, done: int):
    if not show or not total:
        return _NoBar()
    import click

    bar = click.progressbar(length=total, label=name, file=sys.stderr)
    if done:
        bar.update(done)
    return bar


def _reason(error: Exception) -> str:
    text = str(error.__context__ or error) or type(error).__name__
    return text.splitlines()[0][:200]


def _size(path: Path) -> str:
    n = path.stat().st_size if path.is_file() else 0
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n} bytes"


def verify_archive(path: Path, archive: Archive) -> list[str]:
    """Reads the whole archive (gzip and zip CRCs included); returns its member names.

    Raises:
        IamError: the file is not a complete archive of the expected kind.
    """
    try:
        if archive.name.endswith(".zip"):
            with zipfile.ZipFile(path) as z:
                bad = z.testzip()
                if bad is not None:
                    raise IamError(f"{archive.name}: member {bad} is corrupt")
                names = z.namelist()
        else:
            with gzip.open(path) as gz:
                with tarfile.open(fileobj=gz, mode="r|") as tar:
                    names = [m.name for m in tar]
                while gz.read(1 << 20):  # to the end, so that the gzip CRC is checked
                    pass
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise IamError(f"{archive.name} is not a complete archive ({_reason(e)})") from None
    if not any(n.endswith(archive.must_hold) for n in names):
        raise IamError(f"{archive.name} holds no {archive.must_hold} file: not the IAM archive expected")
    return names


def extract(path: Path, target: Path) -> bool:
    """Extracts into ``target`` (via a temporary folder); False if ``target`` already exists."""
    if target.is_dir():
        return False
    with atomic_dir(target) as tmp:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                for member in z.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise IamError(f"{path.name}: unsafe member path {member!r}")
                z.extractall(tmp)
        else:
            with tarfile.open(path, "r:gz") as tar:
                try:
                    tar.extractall(tmp, filter="data")
                except tarfile.FilterError as e:
                    raise IamError(f"{path.name}: unsafe member ({e})") from None
    return True


def read_lines_txt(path: Path) -> dict[str, tuple[str, str]]:
    """``{line id: (segmentation flag, transcription)}`` of IAM's ``lines.txt``.

    Each line reads ``a01-000u-00 ok 154 19 408 746 1661 89 A|MOVE|to|stop|Mr.|Gaitskell|from``;
    ``|`` separates words and becomes a space.
    """
    lines = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, raw in enumerate(f, start=1):
            raw = raw.rstrip("\r\n")
            if not raw or raw.startswith("#"):
                continue
            fields = raw.split(" ", 8)
            if len(fields) < 9:
                logger.warning("%s:%d: not an IAM line record, skipped", path, number)
                continue
            lines[fields[0]] = (fields[1], fields[8].replace("|", " "))
    return lines


def read_split(path: Path, known: dict[str, tuple[str, str]]) -> list[str]:
    """Line ids of a split file; an entry naming a form (``a01-000u``) stands for its lines."""
    by_form: dict[str, list[str]] = {}
    for line_id in known:
        by_form.setdefault(line_id.rsplit("-", 1)[0], []).append(line_id)
    ids = []
    for entry in path.read_text(encoding="utf-8", errors="replace").split():
        ids.extend(by_form.get(entry, [entry]) if entry not in known else [entry])
    return ids


def _find(root: Path, name: str) -> Path:
    found = sorted(root.rglob(name))
    if not found:
        raise IamError(f"{root} holds no {name}: remove that folder and run again to extract it anew")
    return found[0]


def generate(
    download_dir: Path,
    generated_data_dir: Path,
    segmentation: str = "all",
    normalization: str = "NFC",
) -> tuple[dict[str, int], dict[str, Path], list[tuple[str, str]]]:
    """Writes the split CSVs, the alphabet, the report and ``config.json`` from the extracted data."""
    if segmentation not in SEGMENTATION_FLAGS:
        raise ValueError(f"segmentation: must be one of {', '.join(SEGMENTATION_FLAGS)}, got {segmentation!r}")
    lines = read_lines_txt(_find(download_dir / "ascii", "lines.txt"))
    images = {p.stem: p for p in (download_dir / "lines").rglob("*.png")}
    csv_dir = generated_data_dir / "generated_csv"
    csv_dir.mkdir(parents=True, exist_ok=True)
    files, counts, skipped = {}, {}, []
    for split in SPLITS:
        rows = []
        for line_id in read_split(_find(download_dir / SPLIT_TASK, f"{split}.txt"), lines):
            where = f"{split}:{line_id}"
            if line_id not in lines:
                skipped.append((where, "not in ascii/lines.txt"))
                continue
            flag, text = lines[line_id]
            if segmentation == "ok" and flag != "ok":
                skipped.append((where, f"segmentation flag {flag!r} (kept with --segmentation all)"))
                continue
            if line_id not in images:
                skipped.append((where, "no image in lines/"))
                continue
            text = normalize(text, normalization).strip()
            if not text:
                skipped.append((where, "empty transcription"))
                continue
            rows.append((os.path.relpath(images[line_id].resolve(), csv_dir.resolve()), join_units(list(text))))
        files[split] = csv_dir / f"{split}.csv"
        write_csv_rows(files[split], rows)
        counts[split] = len(rows)
    if not any(counts.values()):
        raise IamError(f"no usable line in {download_dir} ({len(skipped)} left out, first: {skipped[:1]})")
    files["alphabet"] = generated_data_dir / "generated_alphabet" / "iam_alphabet_lookup.json"
    files["alphabet"].parent.mkdir(parents=True, exist_ok=True)
    Alphabet.create_lookup_from_labels([files[s] for s in SPLITS], files["alphabet"], normalization=normalization)
    files["report"] = generated_data_dir / "import_report.csv"
    write_import_report(files["report"], skipped)
    files["config"] = generated_data_dir / CONFIG_FILENAME
    write_json(files["config"], iam_config(files, generated_data_dir / "model", normalization))
    return counts, files, skipped


def iam_config(files: dict[str, Path], output_model_dir: Path, normalization: str) -> dict:
    """The recommended training config, its paths relative to the config file's folder (where
    ``Params.from_json_file`` reads them from)."""
    config = {
        "csv_files_train": str(files["trainset"]),
        "csv_files_eval": str(files["validationset1"]),
        "lookup_alphabet_file": str(files["alphabet"]),
        "output_model_dir": str(output_model_dir),
        "unicode_normalization": normalization,
        **IAM_CONFIG,
    }

    Params.from_dict(dict(config))  # the recommendation must stay a valid config
    return relative_paths(config, files["config"].parent)  # the data set's folder moves as a whole


def prepare_iam(
    download_dir: str | os.PathLike,
    generated_data_dir: str | os.PathLike,
    base_url: str = DEFAULT_BASE_URL,
    auth: str = "form",
    segmentation: str = "all",
    normalization: str = "NFC",
    retries: int = 3,
    progress: bool = True,
    credentials: tuple[str, str] | None = None,
) -> PrepareResult:
    """Downloads what is missing, verifies and extracts it, and writes the experiment files.

    Raises:
        IamError: credentials missing or refused, an HTTP error, a dropped connection
            after ``retries`` resumes, or an archive that is not what it should be.
    """
    download_dir, generated_data_dir = Path(download_dir), Path(generated_data_dir)
    download_dir.mkdir(parents=True, exist_ok=True)
    downloaded = []
    missing = [a for a in ARCHIVES if not (download_dir / a.folder).is_dir()]
    if not missing:
        logger.info("%s holds every archive extracted: nothing to download", download_dir)
    else:
        user, password = credentials or credentials_from_env()
        downloader = IamDownloader(base_url, user, password, auth=auth, retries=retries, progress=progress)
        for archive in missing:
            if downloader.fetch(archive, download_dir):
                downloaded.append(archive.name)
        for archive in missing:
            logger.info("Extracting %s", archive.name)
            extract(download_dir / archive.name, download_dir / archive.folder)
    counts, files, skipped = generate(download_dir, generated_data_dir, segmentation, normalization)
    return PrepareResult(counts, files, skipped, downloaded)


__all__ = [
    "ARCHIVES",
    "CredentialsError",
    "DEFAULT_BASE_URL",
    "IAM_CONFIG",
    "IamDownloader",
    "IamError",
    "PrepareResult",
    "prepare_iam",
    "read_lines_txt",
    "verify_archive",
]
