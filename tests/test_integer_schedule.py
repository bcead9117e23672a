"""The host's learning-rate schedule (docs/numerics.md §12): one definition for the model and the sim."""

from types import SimpleNamespace

import pytest
import torch

from golden.integer import train as integer_train
from golden.integer.config import EngineConfig
from golden.integer.network import IntegerNetwork
from golden.integer.train import default_config, lr_offset, lr_segments, train_integer


@pytest.mark.parametrize("lr_decay", [(), (50,), (60, 80, 90, 95), (1, 2, 99), (33, 34, 66)])
@pytest.mark.parametrize("total", [1, 2, 3, 7, 40, 100, 1437])
def test_segments_cover_the_run_with_the_per_sample_offset(lr_decay, total):
    config = default_config("lls", "square", (64, 128, 10), lr_decay=lr_decay)
    segments = lr_segments(config, total)
    assert segments[0][0] == 0 and segments[-1][1] == total
    for (_, stop, offset), (start, _, next_offset) in zip(segments, segments[1:]):
        assert stop == start and next_offset > offset
    per_sample = [offset for start, stop, offset in segments for _ in range(start, stop)]
    assert per_sample == [lr_offset(config, s, total) for s in range(total)]
    # The definition itself: decays d with 100 * s >= d * total have passed.
    assert per_sample == [sum(100 * s >= d * total for d in lr_decay) for s in range(total)]
    assert max(per_sample) <= len(lr_decay)


def test_documented_examples():
    config = EngineConfig()
    assert config.lr_decay == (60, 80, 90, 95)
    # One epoch of digits (docs/numerics.md §12).
    assert lr_segments(config, 1437) == [(0, 863, 0), (863, 1150, 1), (1150, 1294, 2), (1294, 1366, 3),
                                         (1366, 1437, 4)]
    # Ten epochs: after epochs 6, 8 and 9, and at sample 13652 (in epoch 10).
    assert [start for start, _, _ in lr_segments(config, 14370)] == [0, 8622, 11496, 12933, 13652]


def test_train_integer_follows_the_schedule_sample_by_sample(monkeypatch):
    seen = []

    class Spy(IntegerNetwork):
        def train_step(self, x, label, **kwargs):
            seen.append(self.lr_offset)
            return super().train_step(x, label, **kwargs)

    monkeypatch.setattr(integer_train, "IntegerNetwork", Spy)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (13, 2, 2), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 3, (13,), generator=g)
    dataset = SimpleNamespace(name="tiny", n_inputs=4, n_classes=3, train_x=images, train_y=labels,
                              test_x=images, test_y=labels)
    config = default_config("lls", "square", (4, 6, 3))
    train_integer(dataset, config, epochs=3)
    assert seen == [lr_offset(config, s, 39) for s in range(39)]
    assert seen[0] == 0 and seen[-1] == len(config.lr_decay)
