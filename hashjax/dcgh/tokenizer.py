"""Caption tokenisers for DCGH: CLIP's BPE, or a small byte-level BPE trained locally.

Every tokeniser maps a list of captions to int32 ``[n, context_length]`` ids laid out
as in DCGH's reference (``[SOT] + BPE tokens cut to context_length - 2 + [EOT]``,
zero-padded; with context 32: SOT, at most 30 BPE tokens, EOT). Captions are cleaned
first exactly as CLIP's ``simple_tokenizer`` does (``ftfy.fix_text``, HTML unescape
twice, whitespace collapsed, lower case; see docs/dcgh.md#text), so that e.g. curly
quotes become straight ones before BPE. The EOT id is the highest id of the
vocabulary, so the text tower's argmax pooling finds it (a CLIP property).

* ``CLIPBPETokenizer``: OpenAI CLIP's vocabulary (``vocab.json`` + ``merges.txt``, e.g.
  the ``openai/clip-vit-base-patch32`` directory) through transformers'
  ``CLIPTokenizer``, from a local directory only.
* ``BPETokenizer``: byte-level BPE trained with HF ``tokenizers`` by
  ``train_bpe_tokenizer`` when no CLIP vocabulary is available (e.g. COCO-MINI). Ids:
  0 ``<|pad|>``, 1 ``<|startoftext|>``, learned tokens, and ``<|endoftext|>`` last.

``load_tokenizer(directory)`` reopens either kind from what ``save`` wrote.
"""

from __future__ import annotations

import abc
import html
import json
import os
from collections.abc import Iterable, Sequence

import ftfy
import numpy as np

from hashjax import checks, fileio

__all__ = [
    "BPETokenizer",
    "CLIPBPETokenizer",
    "EOT_TOKEN",
    "PAD_TOKEN",
    "SOT_TOKEN",
    "Tokenizer",
    "clean_text",
    "load_tokenizer",
    "train_bpe_tokenizer",
]

SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|pad|>"
_META = "hashjax_tokenizer.json"


def clean_text(text: str) -> str:
  """CLIP's caption cleaning (its ``basic_clean``, ``whitespace_clean``, ``lower``).

  ``ftfy.fix_text``, HTML-unescape twice, collapse whitespace, strip, lower-case.
  """
  if not isinstance(text, str):
    raise ValueError(f"captions must be str, got {type(text).__name__}.")
  text = html.unescape(html.unescape(ftfy.fix_text(text)))
  return " ".join(text.split()).lower()


class Tokenizer(abc.ABC):
  """Common interface: ``encode``, ``vocab_size``, ``save``, ``load``."""

  context_length: int
  sot_id: int
  eot_id: int
  pad_id: int = 0

  @property
  @abc.abstractmethod
  def vocab_size(self) -> int:
    """Number of ids (the text tower's ``vocab_size``)."""

  @abc.abstractmethod
  def _bpe_ids(self, texts: list[str]) -> list[list[int]]:
    """BPE ids of cleaned captions, without special tokens."""

  @abc.abstractmethod
  def _save(self, directory: str) -> None:
    """Writes the vocabulary files into ``directory``."""

  @abc.abstractmethod
  def decode(self, ids: Sequence[int]) -> str:
    """Text of one row of ids (special tokens and padding dropped)."""

  def encode(self, texts: Iterable[str]) -> np.ndarray:
    """Tokenises captions.

    Args:
      texts: ``n`` captions (a list, not a single str).

    Returns:
      int32 ``[n, context_length]``: SOT, at most ``context_length - 2`` BPE ids,
      EOT, then zeros.
    """
    if isinstance(texts, str):
      raise ValueError("encode takes a list of captions, got a single str.")
    texts = [clean_text(t) for t in texts]
    out = np.zeros((len(texts), self.context_length), np.int32)
    for i, ids in enumerate(self._bpe_ids(texts) if texts else []):
      row = [self.sot_id, *ids[: self.context_length - 2], self.eot_id]
      out[i, : len(row)] = row
    return out

  def save(self, directory: str | os.PathLike[str]) -> None:
    """Writes the tokeniser into ``directory`` (created; BPE: any epath path)."""
    directory = os.fspath(directory)
    fileio.makedirs(directory)
    self._save(directory)
    fileio.write_text(fileio.join(directory, _META), json.dumps(
        {"kind": self._kind, "context_length": self.context_length}))

  @classmethod
  def load(cls, directory: str | os.PathLike[str], *,
           context_length: int | None = None) -> Tokenizer:
    """Reopens a saved tokeniser (see ``load_tokenizer``)."""
    tok = load_tokenizer(directory, context_length=context_length)
    if not isinstance(tok, cls):
      raise ValueError(
          f"{directory} holds a {type(tok).__name__}, not a {cls.__name__}.")
    return tok

  _kind = ""

  def _check_ids(self) -> None:
    checks.check_positive_int("context_length", self.context_length)
    if self.context_length < 2:
      raise ValueError(f"context_length must be >= 2, got {self.context_length}.")
    if self.eot_id != self.vocab_size - 1:
      raise ValueError(
          f"{EOT_TOKEN} has id {self.eot_id} but the highest id is "
          f"{self.vocab_size - 1}; argmax pooling needs EOT to be the highest id.")


class CLIPBPETokenizer(Tokenizer):
  """CLIP's BPE through transformers' ``CLIPTokenizer`` (fast if available)."""

  _kind = "clip"

  def __init__(self, hf_tokenizer, *, context_length: int = 32):
    self._hf = hf_tokenizer
    self.context_length = context_length
    vocab = hf_tokenizer.get_vocab()
    for token in (SOT_TOKEN, EOT_TOKEN):
      if token not in vocab:
        raise ValueError(f"CLIP vocabulary lacks {token!r}.")
    self.sot_id, self.eot_id = vocab[SOT_TOKEN], vocab[EOT_TOKEN]
    self._check_ids()

  @classmethod
  def from_directory(cls, directory: str | os.PathLike[str], *,
                     context_length: int = 32) -> CLIPBPETokenizer:
    """Loads ``vocab.json`` + ``merges.txt`` (or ``tokenizer.json``) from a dir."""
    directory = os.fspath(directory)
    has = lambda name: os.path.isfile(os.path.join(directory, name))  # noqa: E731
    if not (has("tokenizer.json") or (has("vocab.json") and has("merges.txt"))):
      raise ValueError(
          f"{directory!r} must hold vocab.json and merges.txt (or tokenizer.json).")
    try:
      from transformers import CLIPTokenizerFast as hf_cls  # pylint: disable=g-import-not-at-top
    except ImportError:  # pragma: no cover
      from transformers import CLIPTokenizer as hf_cls  # pylint: disable=g-import-not-at-top
    hf = hf_cls.from_pretrained(directory, local_files_only=True)
    return cls(hf, context_length=context_length)

  @property
  def vocab_size(self) -> int:
    return len(self._hf)

  def _bpe_ids(self, texts: list[str]) -> list[list[int]]:
    backend = getattr(self._hf, "backend_tokenizer", None)
    if backend is not None:
      return [e.ids for e in backend.encode_batch(texts, add_special_tokens=False)]
    return self._hf(texts, add_special_tokens=False)["input_ids"]  # pragma: no cover

  def decode(self, ids: Sequence[int]) -> str:
    return self._hf.decode([int(i) for i in ids if i != self.pad_id],
                           skip_special_tokens=True).strip()

  def _save(self, directory: str) -> None:
    self._hf.save_pretrained(directory)


class BPETokenizer(Tokenizer):
  """A byte-level BPE (HF ``tokenizers``) with CLIP's id conventions."""

  _kind = "bpe"

  def __init__(self, tokenizer, *, context_length: int = 32):
    self._tok = tokenizer
    self.context_length = context_length
    ids = {t: tokenizer.token_to_id(t) for t in (PAD_TOKEN, SOT_TOKEN, EOT_TOKEN)}
    if None in ids.values():
      raise ValueError(f"BPE vocabulary lacks special tokens: {ids}.")
    if ids[PAD_TOKEN] != 0:
      raise ValueError(f"{PAD_TOKEN} must have id 0, got {ids[PAD_TOKEN]}.")
    self.sot_id, self.eot_id = ids[SOT_TOKEN], ids[EOT_TOKEN]
    self._check_ids()

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  def _bpe_ids(self, texts: list[str]) -> list[list[int]]:
    return [e.ids for e in self._tok.encode_batch(texts, add_special_tokens=False)]

  def decode(self, ids: Sequence[int]) -> str:
    return self._tok.decode([int(i) for i in ids], skip_special_tokens=True).strip()

  def _save(self, directory: str) -> None:
    fileio.write_text(fileio.join(directory, "tokenizer.json"), self._tok.to_str())


def _bpe_pipeline():
  # pylint: disable=g-import-not-at-top
  from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers
  from tokenizers import Tokenizer as HFTokenizer

  tok = HFTokenizer(models.BPE())
  tok.normalizer = normalizers.Sequence([
      normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "),
      normalizers.Strip(), normalizers.Lowercase()])
  tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
  tok.decoder = decoders.ByteLevel()
  return tok


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int, *,
                        context_length: int = 32, min_frequency: int = 2
                        ) -> BPETokenizer:
  """Trains a byte-level BPE on captions with HF ``tokenizers``.

  Args:
    texts: training captions (cleaned as in ``encode`` before training).
    vocab_size: target number of ids, all 256 byte symbols and the three special
      tokens included (fewer if the captions support fewer merges); >= 259.
    context_length: length of encoded rows (DCGH: 32).
    min_frequency: least count of a pair to be merged.

  Returns:
    A ``BPETokenizer`` with ids 0 = pad, 1 = SOT, ..., ``vocab_size - 1`` = EOT.
  """
  from tokenizers import pre_tokenizers, trainers  # pylint: disable=g-import-not-at-top

  checks.check_positive_int("vocab_size", vocab_size)
  alphabet = pre_tokenizers.ByteLevel.alphabet()
  if vocab_size < len(alphabet) + 3:
    raise ValueError(f"vocab_size must be >= {len(alphabet) + 3} (256 bytes + 3 "
                     f"special tokens), got {vocab_size}.")
  texts = [clean_text(t) for t in texts]
  if not texts:
    raise ValueError("train_bpe_tokenizer needs at least one caption.")
  tok = _bpe_pipeline()
  # EOT is added after training so that it receives the highest id.
  trainer = trainers.BpeTrainer(
      vocab_size=vocab_size - 1, min_frequency=min_frequency, show_progress=False,
      special_tokens=[PAD_TOKEN, SOT_TOKEN], initial_alphabet=alphabet)
  tok.train_from_iterator(texts, trainer=trainer)
  tok.add_special_tokens([EOT_TOKEN])
  return BPETokenizer(tok, context_length=context_length)


def load_tokenizer(directory: str | os.PathLike[str], *,
                   context_length: int | None = None) -> Tokenizer:
  """Opens a tokeniser directory.

  Args:
    directory: written by ``Tokenizer.save``, or a CLIP vocabulary directory
      (``vocab.json`` + ``merges.txt``, e.g. an HF ``openai/clip-vit-*`` checkout).
    context_length: overrides the saved length (default: saved, else 32).

  Returns:
    A ``CLIPBPETokenizer`` or ``BPETokenizer``.
  """
  directory = os.fspath(directory)
  meta_path = fileio.join(directory, _META)
  meta = fileio.read_json(meta_path) if fileio.exists(meta_path) else {}
  length = context_length or meta.get("context_length", 32)
  kind = meta.get("kind")
  if kind is None:
    kind = "clip" if fileio.exists(fileio.join(directory, "vocab.json")) else None
  if kind == "clip":
    return CLIPBPETokenizer.from_directory(directory, context_length=length)
  if kind == "bpe":
    from tokenizers import Tokenizer as HFTokenizer  # pylint: disable=g-import-not-at-top
    text = fileio.read_text(fileio.join(directory, "tokenizer.json"))
    tok = HFTokenizer.from_str(text)
    return BPETokenizer(tok, context_length=length)
  raise ValueError(f"{directory!r} holds no tokenizer ({_META} or vocab.json + "
                   "merges.txt expected).")
