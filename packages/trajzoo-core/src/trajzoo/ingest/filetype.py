"""What a raw input file really is (magic bytes), and strict decompression of .gz/.bz2/.xz.

Shared by every reader of raw files (trajectories, OSM extracts, POIs): a file is identified by
its first bytes, not its name, so a gzip file named ``.xz`` or a zip given where a tar archive
is expected is reported as what it is (:func:`sniff`, :func:`require_kind`).

Compressed files are read with :func:`open_compressed`, which decodes every stream of a
multi-stream file (pbzip2, ``xz -T``, ``cat a.gz b.gz``) and fails on a damaged one. Python's
own ``lzma.open`` / ``bz2.open`` treat a later stream that does not decode as "trailing
garbage" and stop there without an error, so half a file would be read and every count would
balance (``_compression.DecompressReader``); :class:`StrictDecompressReader` does not.
"""
from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import zlib
from pathlib import Path

from trajzoo.ingest.errors import InputFileError

#: Kinds recognised by :func:`sniff`, with their description in messages.
KIND_NAMES = {
    "gzip": "gzip-compressed data", "bz2": "bzip2-compressed data", "xz": "xz-compressed data",
    "zstd": "zstd-compressed data", "zip": "a zip archive", "tar": "an (uncompressed) tar archive",
    "osm_pbf": "an OSM PBF file (binary protobuf)", "osm_xml": "OSM XML", "xml": "XML (not OSM)",
    "json": "JSON text", "csv": "CSV text", "text": "plain text", "html": "an HTML page",
    "empty": "an empty file", "binary": "binary data of unknown type",
}
#: Compression kinds and the file-name suffix each is normally given.
COMPRESSION_SUFFIX = {"gzip": ".gz", "bz2": ".bz2", "xz": ".xz", "zstd": ".zst"}
#: Suffix -> compression kind it promises.
SUFFIX_COMPRESSION = {v: k for k, v in COMPRESSION_SUFFIX.items()} | {".tgz": "gzip", ".txz": "xz", ".tbz2": "bz2"}
#: A UTF-8 byte-order mark; every reader drops one at the start of a file (:func:`strip_bom`).
UTF8_BOM = b"\xef\xbb\xbf"
#: Errors a decompressor raises on truncated or corrupt data.
DECOMPRESS_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error)


class FileTypeError(InputFileError):
    """A file is not of the kind expected; the message names the file, what it is (by its magic
    bytes) and what was expected: ``"<path>: is <kind>, expected <kind>"``."""

    def __init__(self, path: Path | str, problem: str):
        super().__init__(path, problem)


def _compression_of(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


def sniff_bytes(head: bytes) -> str:
    """The kind of data that starts with ``head`` (the first few KiB of a file or stream).

    Returns:
        One of :data:`KIND_NAMES`: a compression (``gzip``, ``bz2``, ``xz``, ``zstd``), an archive
        (``zip``, ``tar``: the ``ustar`` magic at byte 257), ``osm_pbf`` (a 4-byte length, then
        the ``OSMHeader`` blob type), ``osm_xml`` / ``xml`` / ``html`` / ``json`` (first
        non-blank character after an optional BOM), ``csv`` (a first line with a comma),
        ``text``, ``empty`` or ``binary``.
    """
    if not head:
        return "empty"
    comp = _compression_of(head)
    if comp:
        return comp
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "tar"
    if len(head) > 15 and head[4:15] == b"\x0a\x09OSMHeader":
        return "osm_pbf"
    text = head[len(UTF8_BOM):] if head.startswith(UTF8_BOM) else head
    stripped = text.lstrip()
    low = stripped[:200].lower()
    if low.startswith(b"<?xml") or low.startswith(b"<osm"):
        return "osm_xml" if b"<osm" in text[:4096].lower() else "xml"
    if low.startswith(b"<!doctype html") or low.startswith(b"<html"):
        return "html"
    if stripped[:1] in (b"{", b"["):
        return "json"
    try:
        sample = text[:4096].decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(text[:4096]) - 4:  # not just a character cut at the end of the sample
            return "binary"
        sample = text[:exc.start].decode("utf-8")
    if "\x00" in sample:
        return "binary"
    first = sample.splitlines()[0] if sample.splitlines() else ""
    return "csv" if "," in first else "text"


def sniff(path: Path | str, decompress: bool = False) -> str:
    """The kind of the file ``path`` by its magic bytes (see :func:`sniff_bytes`).

    Args:
        path: a file.
        decompress: for a compressed file, the kind of its decompressed content instead
            (e.g. ``tar`` for a .tar.xz, ``csv`` for a .csv.gz); ``binary`` if its start does not
            decompress.

    Raises:
        OSError: the file cannot be opened.
    """
    with open(path, "rb") as f:
        head = f.read(4096)
    kind = sniff_bytes(head)
    if decompress and kind in ("gzip", "bz2", "xz"):
        try:
            with open_compressed(path, check_suffix=False) as f:
                return sniff_bytes(f.read(4096))
        except DECOMPRESS_ERRORS:
            return "binary"
    return kind


def describe(kind: str) -> str:
    """The words for a kind of :func:`sniff` (e.g. ``"a zip archive"``)."""
    return KIND_NAMES.get(kind, kind)


def require_kind(path: Path | str, kind: str, expected: tuple[str, ...], what: str) -> None:
    """Raise unless ``kind`` (of :func:`sniff`) is one of ``expected``.

    Args:
        path: the file (named in the message).
        kind: what the file is.
        expected: the acceptable kinds.
        what: the expected content in words, e.g. ``"a tar archive of cabspottingdata/"``.

    Raises:
        FileTypeError: ``<path>: is <what it is>, expected <what>``.
    """
    if kind not in expected:
        raise FileTypeError(path, f"is {describe(kind)}, expected {what}")


class StrictDecompressReader(io.RawIOBase):
    """A raw binary stream of a whole (possibly multi-stream) .gz/.bz2/.xz file that fails on
    corrupt data anywhere, also at the start of a later stream.

    A new stream may follow the end of each one; bytes after the last stream are allowed only as
    null padding (xz stream padding, tape blocks). Anything else, and a file that ends inside a
    stream, raise.

    Raises (on read):
        EOFError: the file ends inside a stream (truncated).
        lzma.LZMAError, OSError, zlib.error: a stream does not decode; the message says which
            stream (1-based) and at which compressed byte it starts.
    """

    def __init__(self, path, kind: str, defer_errors: bool = False):
        """``path``: a file path, or a binary file object (read from its position); ``kind``:
        ``"gzip"``, ``"bz2"`` or ``"xz"``. ``defer_errors``: on corrupt or truncated data, end the
        stream (read returns b"") and keep the error in :attr:`error` for the caller to raise once
        it has used the data decoded before it (a consumer that reads in large blocks would lose
        those otherwise)."""
        self._path = str(path)
        self._defer = defer_errors
        self.error: BaseException | None = None
        self._kind = kind
        self._fp = open(path, "rb") if isinstance(path, (str, Path)) else path
        self._dec = self._new()
        self._stream = 1
        self._stream_start = 0
        self._consumed = 0  # compressed bytes read from the file so far
        self._pending = b""  # compressed bytes not yet given to the decompressor
        self._done = False

    def _new(self):
        if self._kind == "xz":
            return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
        if self._kind == "bz2":
            return bz2.BZ2Decompressor()
        return zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member

    def readable(self) -> bool:
        return True

    def _needs_input(self) -> bool:
        if self._kind == "gzip":
            return not self._dec.unconsumed_tail
        return self._dec.needs_input

    def _read_raw(self) -> bytes:
        data = self._fp.read(1 << 16)
        self._consumed += len(data)
        return data

    def _next_stream(self) -> bool:
        """Start the stream after the one that ended; False at the end of the file."""
        rest = self._dec.unused_data
        while not rest.strip(b"\x00"):  # nothing, or null padding so far
            more = self._read_raw()
            if not more:
                return False
            rest = more
        rest = rest.lstrip(b"\x00")
        self._stream += 1
        self._stream_start = self._consumed - len(rest)
        self._dec = self._new()
        self._pending = rest
        return True

    def readinto(self, buf) -> int:
        if not self._defer:
            return self._readinto(buf)
        if self.error is not None:
            return 0
        try:
            return self._readinto(buf)
        except DECOMPRESS_ERRORS as exc:
            self.error = exc
            return 0

    def _readinto(self, buf) -> int:
        size = len(buf)
        while not self._done:
            if self._dec.eof and not self._next_stream():
                self._done = True
                break
            if self._kind == "gzip" and self._dec.unconsumed_tail:
                data = self._dec.unconsumed_tail
            elif self._needs_input():
                data = self._pending or self._read_raw()
                if not data:
                    raise EOFError(f"compressed file ended before the end of stream {self._stream} "
                                   "(truncated)")
            else:
                data = b""
            self._pending = b""
            try:
                out = self._dec.decompress(data, size)
            except (lzma.LZMAError, OSError, zlib.error, EOFError) as exc:
                raise type(exc)(f"stream {self._stream} (starting at compressed byte {self._stream_start + 1}) "
                                f"does not decode: {exc}") from exc
            if out:
                buf[:len(out)] = out
                return len(out)
        return 0

    def close(self) -> None:
        if not self.closed:
            self._fp.close()
        super().close()


def open_compressed(path: Path | str, check_suffix: bool = True) -> io.BufferedReader:
    """Open a file for binary reading, decompressing it when its magic bytes say it is
    compressed (gzip, bzip2, xz), whatever its name, with :class:`StrictDecompressReader`.

    Args:
        path: the file.
        check_suffix: refuse a file whose compression suffix (.gz, .bz2, .xz, .tgz, .txz)
            promises another compression than its content has (or none).

    Returns:
        A buffered binary stream of the decompressed bytes (plain files are opened as they are).

    Raises:
        FileTypeError: a suffix that does not match the content (``<path>: is gzip-compressed
            data, expected xz-compressed data (the name ends in .xz)``), or zstd data (not
            supported).
        OSError: the file cannot be opened.
    """
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
    comp = _compression_of(head)
    promised = SUFFIX_COMPRESSION.get(path.suffix.lower())
    if check_suffix and promised and comp != promised:
        actual = describe(sniff(path))
        raise FileTypeError(path, f"is {actual}, expected {describe(promised)} (the name ends in {path.suffix})")
    if comp == "zstd":
        raise FileTypeError(path, "is zstd-compressed data, which is not supported (use .xz, .bz2 or .gz)")
    if comp is None:
        return open(path, "rb")
    return io.BufferedReader(StrictDecompressReader(path, comp))


def strip_bom(data: bytes) -> bytes:
    """``data`` without a leading UTF-8 byte-order mark (every reader accepts one at the start of
    a file and nowhere else)."""
    return data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data


def open_tar_stream(path: Path | str) -> tuple[tarfile.TarFile, StrictDecompressReader | None]:
    """Open a (compressed) tar archive for one streaming pass, decompressing every stream strictly
    (:class:`StrictDecompressReader` with deferred errors).

    Returns:
        ``(tar, raw)``: the archive, and the decompressing stream (None for a plain .tar). Once
        done with ``tar`` (or on a ``tarfile.TarError``) the caller must raise ``raw.error`` if it
        is set: the compressed data was truncated or corrupt there.

    Raises:
        FileTypeError: the file (or its decompressed content) is not a tar archive: names what it
            is (zip, CSV, ...).
    """
    path = Path(path)
    kind = sniff(path)
    if kind in ("gzip", "bz2", "xz"):
        inner = sniff(path, decompress=True)
        if inner not in ("tar", "binary", "empty"):
            raise FileTypeError(path, f"is {describe(kind)} holding {describe(inner)}, expected a tar archive "
                                      "(.tar, .tar.gz, .tar.bz2, .tar.xz)")
    elif kind != "tar":
        raise FileTypeError(path, f"is {describe(kind)}, expected a tar archive (.tar, .tar.gz, .tar.bz2, .tar.xz)")
    open_compressed(path, check_suffix=True).close()  # the suffix must match the magic bytes
    if kind == "tar":
        return tarfile.open(path, mode="r|"), None
    raw = StrictDecompressReader(path, kind, defer_errors=True)
    try:
        return tarfile.open(fileobj=raw, mode="r|"), raw
    except tarfile.TarError:
        if raw.error is not None:
            raise raw.error from None
        raise


def open_zip_member(path: Path | str, suffixes: tuple[str, ...], what: str):
    """Open the one data file of a zip archive (as Kaggle distributes ``train.csv.zip``).

    Args:
        path: the zip archive.
        suffixes: acceptable member name endings, e.g. ``(".csv",)``.
        what: the expected member in words (for messages).

    Returns:
        ``(stream, member_name)``: a binary stream of the member.

    Raises:
        FileTypeError: the archive is unreadable, or holds no such member or more than one
            (naming them).
    """
    import zipfile

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FileTypeError(path, f"truncated or corrupt zip archive: {exc}") from exc
    names = [i.filename for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    hits = [n for n in names if n.lower().endswith(suffixes)]
    if len(hits) != 1:
        zf.close()
        raise FileTypeError(path, f"a zip archive holding {len(hits)} {what} member(s) {hits} "
                                  f"(members: {names[:10]}); expected exactly one")
    return zf.open(hits[0]), hits[0]


def decompress_bytes(raw: bytes, name: str) -> bytes:
    """The content of an in-memory file: decompressed strictly (every stream) when its magic bytes
    say gzip/bzip2/xz, else ``raw`` itself.

    Raises:
        InputFileError: corrupt or truncated compressed data (naming ``name``).
    """
    comp = _compression_of(raw[:8])
    if comp is None:
        return raw
    try:
        return io.BufferedReader(StrictDecompressReader(io.BytesIO(raw), comp)).read()
    except DECOMPRESS_ERRORS as exc:
        raise InputFileError(name, f"truncated or corrupt {describe(comp)}: {exc}") from exc
