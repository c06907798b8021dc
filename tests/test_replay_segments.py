"""Replay checkpoints write only what changed, and rebuild the storage exactly."""

from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict

from lit_rl.data.replay import make_replay_buffer
from lit_rl.data.replay_segments import ReplaySegments
from lit_rl.modules.state import load_plain


def rows(start: int, count: int) -> TensorDict:
    values = torch.arange(start, start + count, dtype=torch.float32)
    return TensorDict({"x": values[:, None], ("next", "r"): -values}, batch_size=[count])


def snapshot(buffer) -> tuple[torch.Tensor, dict]:
    return buffer.storage[: len(buffer)]["x"].clone(), dict(buffer._writer.state_dict())


@pytest.mark.parametrize("total", [7, 10, 23, 47])  # below, at, and twice past capacity
def test_segments_rebuild_the_buffer_bit_for_bit(tmp_path, total):
    buffer, segments = make_replay_buffer(10, 4), ReplaySegments(tmp_path, rank=0)
    written, states = 0, []
    for chunk in (3, 4, 5, 1, 6, 8, 2, 9, 5, 4):
        if written >= total:
            break
        count = min(chunk, total - written)
        buffer.extend(rows(written, count))
        written += count
        states.append((segments.save(buffer), snapshot(buffer)))
    for state, (expected_rows, expected_writer) in states[-2:]:
        rebuilt = make_replay_buffer(10, 4)
        ReplaySegments(tmp_path, rank=0).load(rebuilt, state, load_plain)
        got_rows, got_writer = snapshot(rebuilt)
        assert torch.equal(got_rows, expected_rows) and got_writer == expected_writer
        rebuilt.extend(rows(1000, 3))  # the next write lands where the original's would
        buffer_copy = make_replay_buffer(10, 4)
        ReplaySegments(tmp_path, rank=0).load(buffer_copy, state, load_plain)
        buffer_copy.extend(rows(1000, 3))
        assert torch.equal(snapshot(rebuilt)[0], snapshot(buffer_copy)[0])


def test_each_save_writes_only_the_new_rows_and_drops_overwritten_segments(tmp_path):
    buffer, segments = make_replay_buffer(10, 4), ReplaySegments(tmp_path, rank=0)
    buffer.extend(rows(0, 6))
    first = segments.save(buffer)
    assert [s["end_write"] - s["start_write"] for s in first["segments"]] == [6]
    assert segments.save(buffer)["segments"] == first["segments"]  # nothing new, no file
    assert len(segments.files()) == 1
    buffer.extend(rows(6, 3))
    second = segments.save(buffer)
    assert [s["end_write"] - s["start_write"] for s in second["segments"]] == [6, 3]
    data = torch.load(tmp_path / second["segments"][-1]["name"], weights_only=True)
    assert data["rows"]["batch_size"] == [3]  # only the three new rows
    buffer.extend(rows(9, 12))  # 21 writes into 10 slots: the first two segments are gone
    third = segments.save(buffer)
    assert [s["start_write"] for s in third["segments"]] == [11]
    assert third["segments"][0]["end_write"] == 21
