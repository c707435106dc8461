"""Trainers: the loop between a model and a trained model, with checkpoints.

:class:`Trainer` feeds shuffled mini-batches (classifiers, word2vec, seq2seq);
:class:`RnnlmTrainer` feeds a corpus in truncated-BPTT order to a stateful
language model. Both take a model (``params``, ``grads``, ``forward(x, t) ->
loss``, ``backward()``) and an optimizer from :mod:`timelayers.optim`, and give:

- gradient clipping by global norm (``max_grad``);
- an evaluation hook per epoch, ``eval_fn(model) -> dict``, whose values go into
  the history and to the learning-rate schedule (:mod:`timelayers.schedules`);
- a history (:mod:`.history`): per-epoch lists ``"epoch"``, ``"iteration"``
  (batches done so far), ``"loss"`` (mean training loss of the epoch),
  ``"perplexity"`` (``RnnlmTrainer``), ``"lr"`` (the rate used during the
  epoch), ``"seconds"``, ``"skipped"`` (non-finite batches skipped), the eval
  keys, and the running loss every ``eval_interval`` iterations as
  ``"interval_epoch"`` / ``"interval_loss"``; ``save_history(path)`` writes it as
  JSON, ``plot(path)`` as a PNG learning curve;
- progress (:mod:`.progress`): a tqdm bar per epoch on a terminal, ``logging``
  lines (logger ``"timelayers"``) otherwise, nothing with ``progress=False``.
  The library prints nothing else;
- non-finite losses and gradient norms stop training with
  :class:`NonFiniteLossError` naming the epoch and iteration (or the batch is
  skipped with ``skip_nonfinite=True``). The losses stay on the device
  (:mod:`.meters`): they are read to the host at each interval and epoch end,
  and checked every iteration on NumPy, every ``eval_interval`` on a GPU
  (``check_interval``);
- training checkpoints (:mod:`.checkpoint`), written atomically after each
  epoch with ``fit(..., checkpoint=path)``; ``Trainer.resume(path)`` or
  ``trainer.load_checkpoint(path)`` then ``fit(..., max_epoch=total)`` gives
  the same losses, to the bit, as an uninterrupted run;
- callbacks ``callback(trainer, event, info)`` (:mod:`.callbacks`), e.g.
  :class:`SaveBest`.

The modules: :mod:`.trainer` (the loop, :class:`FitOptions`),
:mod:`.rnnlm_trainer`, :mod:`.meters`, :mod:`.checkpoint`, :mod:`.history`,
:mod:`.progress`, :mod:`.callbacks`, :mod:`.jsonable`.
"""

from .callbacks import SaveBest
from .history import load_history, save_history
from .rnnlm_trainer import RnnlmTrainer
from .trainer import FitOptions, Trainer

__all__ = ["Trainer", "RnnlmTrainer", "FitOptions", "SaveBest", "save_history",
           "load_history"]
