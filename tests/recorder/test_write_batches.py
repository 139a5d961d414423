"""`write_batches`: the I/O thread's writes of one hand-over, several recordings at once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recorder import writer
from recorder.writer import AUDIO, JOURNAL, OpenFiles, WriteBatch, write_batch, write_batches

native = pytest.importorskip("media._engine")


def batches(root: Path, durable: bool = False) -> list[WriteBatch]:
    """Three recordings, four flushes each, interleaved as a hand-over has them; one
    flush has no audio (a silent stretch still gets its journal line)."""
    out = []
    for i in range(3):
        (root / f"r{i}.part").mkdir(parents=True)
    for flush in range(4):
        for i in range(3):
            data = b"" if (i, flush) == (1, 2) else bytes([i * 16 + flush]) * 4 * (100 + flush)
            offset = sum(100 + f for f in range(flush))
            record = {"t": "flush", "now": 1.5 * flush, "samples": [offset, offset]}
            out.append(WriteBatch(root / f"r{i}.part", offset, data, record, durable))
    return out


def contents(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.parametrize("durable", [False, True])
def test_they_write_what_write_batch_writes(tmp_path: Path, durable: bool) -> None:
    one, many = OpenFiles(), OpenFiles()
    for batch in batches(tmp_path / "one", durable):
        write_batch(batch, one)
    assert write_batches(batches(tmp_path / "many", durable), many) == []
    one.close()
    many.close()
    expected = contents(tmp_path / "one")
    assert len(expected) == 6 and expected == contents(tmp_path / "many")
    # offsets past the header, the journal in order
    audio = expected[f"r0.part/{AUDIO}"]
    assert audio[44:48] == b"\x00" * 4 and audio[-4:] == b"\x03" * 4
    assert expected[f"r1.part/{JOURNAL}"].count(b"\n") == 4


def test_without_the_c_writer_the_result_is_the_same(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    files = OpenFiles()
    assert write_batches(batches(tmp_path / "c"), files) == []
    monkeypatch.setattr(writer, "_write_many", None)
    assert write_batches(batches(tmp_path / "py"), files) == []
    files.close()
    assert contents(tmp_path / "c") == contents(tmp_path / "py")


def test_a_failed_batch_is_reported_and_the_others_are_written(tmp_path: Path) -> None:
    todo = batches(tmp_path)
    files = OpenFiles()
    # r1: its audio file is open read-only, so the C writer's pwrite fails (EBADF)
    readonly = tmp_path / "r1.part" / AUDIO
    readonly.write_bytes(b"")
    files._fds[tmp_path / "r1.part"] = {AUDIO: os.open(readonly, os.O_RDONLY)}
    # r2: its directory is gone, so opening fails before anything is written
    gone = [b for b in todo if b.part.name == "r2.part"]
    (tmp_path / "r2.part").rmdir()
    failed = write_batches(todo, files)
    files.close()
    assert [(b.part.name, exc.errno) for b, exc in failed] == [
        *[("r2.part", 2)] * 4,  # ENOENT, found while collecting
        *[("r1.part", 9)] * 3,  # EBADF from the C writer; r1's third flush had no audio
    ]
    assert {id(b) for b, _ in failed if b.part.name == "r2.part"} == {id(b) for b in gone}
    # r0 is whole; r1's journal vouches only for the flush without audio
    assert (tmp_path / "r0.part" / JOURNAL).read_bytes().count(b"\n") == 4
    assert len((tmp_path / "r0.part" / AUDIO).read_bytes()) == 44 + 4 * (100 + 101 + 102 + 103)
    assert (tmp_path / "r1.part" / JOURNAL).read_bytes().count(b"\n") == 1
    assert readonly.read_bytes() == b""


@pytest.mark.parametrize(("items", "error"), [
    (None, TypeError),
    ([(1, 0, b"")], TypeError),
    ([(1, 0, "text", 1, b"")], TypeError),
    ([(1, -4, b"", 1, b"")], ValueError),
])
def test_the_c_writer_refuses_bad_items(items: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        native.write_batches(items)
