"""The training history every training loop returns: one record per epoch, the last epoch's figures on top."""

import time

__all__ = ["History"]


class History:
    """Collects per-epoch records into the JSON-serialisable ``dict`` that ``--json`` writes.

    Parameters
    ----------
    on_epoch : callable, optional
        Called with each epoch's record as it is added.
    **fields
        Top-level entries (``config``, ``dataset``, ...).
    """

    def __init__(self, on_epoch=None, **fields):
        self.on_epoch = on_epoch
        self.data = {**fields, "epochs": []}
        self.start = time.perf_counter()

    def add_epoch(self, epoch, started, train_accuracy, test_accuracy):
        """Record epoch ``epoch`` (begun at ``time.perf_counter()`` value ``started``)."""
        record = {"epoch": epoch, "train_accuracy": train_accuracy, "test_accuracy": test_accuracy,
                  "seconds": time.perf_counter() - started}
        self.data["epochs"].append(record)
        if self.on_epoch is not None:
            self.on_epoch(record)

    def finish(self):
        """The history ``dict``: the epochs, with the last epoch's accuracies and the total time on top."""
        last = self.data["epochs"][-1]
        self.data.update(train_accuracy=last["train_accuracy"], test_accuracy=last["test_accuracy"],
                         seconds=time.perf_counter() - self.start)
        return self.data
