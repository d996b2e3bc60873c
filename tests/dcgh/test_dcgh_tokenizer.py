"""Tests for hashjax.dcgh.tokenizer: a BPE trained here, a tiny CLIP-format vocab."""

import json

import numpy as np
import pytest

from hashjax.dcgh import tokenizer as tk

CAPTIONS = [
    "A man riding a horse on a beach.",
    "Two dogs playing with a red ball in the park.",
    "A plate of food with broccoli and rice.",
    "A cat sleeping on a laptop keyboard.",
    "A group of people standing around a kitchen.",
    "An airplane parked at the airport gate.",
] * 5


def _check_layout(ids, tok, lengths):
  """SOT first, EOT right after the BPE ids, zeros after, EOT is the row argmax."""
  assert ids.dtype == np.int32 and ids.shape == (len(lengths), tok.context_length)
  for row, m in zip(ids, lengths, strict=True):
    assert row[0] == tok.sot_id and row[m + 1] == tok.eot_id
    assert np.all(row[m + 2:] == 0)
    assert np.all((row[1:m + 1] != tok.eot_id) & (row[1:m + 1] != 0))
    assert np.argmax(row) == m + 1  # argmax pooling finds the EOT


def test_trained_bpe_layout_and_roundtrip(tmp_path):
  tok = tk.train_bpe_tokenizer(CAPTIONS, 300, context_length=24, min_frequency=2)
  assert tok.vocab_size == 300
  vocab = tok._tok.get_vocab(with_added_tokens=True)  # pylint: disable=protected-access
  assert (vocab["<|pad|>"], vocab["<|startoftext|>"]) == (0, 1)
  assert vocab["<|endoftext|>"] == max(vocab.values()) == 299
  assert tok.eot_id == 299 and tok.sot_id == 1

  texts = ["A man riding a horse", "a   MAN riding\ta horse ", "x" * 40, ""]
  ids = tok.encode(texts)
  # Lower-casing and whitespace cleaning give identical rows.
  np.testing.assert_array_equal(ids[0], ids[1])
  m = int(np.argmax(ids[0])) - 1
  assert 5 <= m < 22  # at least one id per word, not truncated
  # Byte-level: 40 characters never seen in training encode, cut to 24 - 2 ids.
  _check_layout(ids, tok, [m, m, 22, 0])
  assert tok.decode(ids[0]) == "a man riding a horse"

  tok.save(tmp_path / "bpe")
  again = tk.load_tokenizer(tmp_path / "bpe")
  assert isinstance(again, tk.BPETokenizer) and again.context_length == 24
  np.testing.assert_array_equal(again.encode(CAPTIONS), tok.encode(CAPTIONS))
  shorter = tk.BPETokenizer.load(tmp_path / "bpe", context_length=4)
  np.testing.assert_array_equal(shorter.encode(texts[:1])[0], [*ids[0, :3], 299])


def test_trained_bpe_bad_inputs(tmp_path):
  with pytest.raises(ValueError, match="vocab_size must be >= 259"):
    tk.train_bpe_tokenizer(CAPTIONS, 100)
  with pytest.raises(ValueError, match="at least one caption"):
    tk.train_bpe_tokenizer([], 300)
  tok = tk.train_bpe_tokenizer(CAPTIONS, 300)
  with pytest.raises(ValueError, match="list of captions"):
    tok.encode("a single string")
  with pytest.raises(ValueError, match="holds no tokenizer"):
    tk.load_tokenizer(tmp_path)


def _bytes_to_unicode():
  """OpenAI CLIP's byte -> printable-char table (clip/simple_tokenizer.py)."""
  bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1)))
  cs, n = bs[:], 0
  for b in range(256):
    if b not in bs:
      bs.append(b)
      cs.append(256 + n)
      n += 1
  return [chr(c) for c in cs]


@pytest.fixture
def clip_dir(tmp_path):
  """A tiny vocabulary in CLIP's format: bytes, bytes + </w>, merges, SOT, EOT."""
  chars = _bytes_to_unicode()
  merges = [("c", "a"), ("ca", "t</w>"), ("t", "h"), ("th", "e</w>")]
  vocab = (chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges]
           + ["<|startoftext|>", "<|endoftext|>"])
  (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
  (tmp_path / "merges.txt").write_text(
      "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
  return tmp_path, {t: i for i, t in enumerate(vocab)}


def test_clip_format_vocabulary(clip_dir, tmp_path_factory):
  d, vocab = clip_dir
  tok = tk.load_tokenizer(d, context_length=8)
  assert isinstance(tok, tk.CLIPBPETokenizer) and tok.vocab_size == len(vocab)
  assert (tok.sot_id, tok.eot_id) == (len(vocab) - 2, len(vocab) - 1)
  ids = tok.encode(["A  Cat, the DOG", "the cat the cat the cat the cat"])
  want = ["a</w>", "cat</w>", ",</w>", "the</w>", "d", "o", "g</w>"]
  # Hand-worked BPE of the first caption: 7 tokens, cut to 8 - 2 = 6, then EOT.
  np.testing.assert_array_equal(
      ids[0], [vocab["<|startoftext|>"], *[vocab[w] for w in want[:6]],
               vocab["<|endoftext|>"]])
  np.testing.assert_array_equal(
      ids[1], [vocab["<|startoftext|>"],
               *[vocab[w] for w in ["the</w>", "cat</w>"] * 3], vocab["<|endoftext|>"]])
  long_tok = tk.CLIPBPETokenizer.load(d, context_length=10)
  short = long_tok.encode(["the  Cat"])
  _check_layout(short, long_tok, [2])
  np.testing.assert_array_equal(short[0, :4], [vocab["<|startoftext|>"],
                                               vocab["the</w>"], vocab["cat</w>"],
                                               vocab["<|endoftext|>"]])
  out = tmp_path_factory.mktemp("saved")
  tok.save(out)
  np.testing.assert_array_equal(tk.load_tokenizer(out).encode(["A  Cat, the DOG"]),
                                ids[:1])


def test_clip_text_fixing_before_bpe(clip_dir):
  """ftfy + double HTML unescape as CLIP's simple_tokenizer, then BPE."""
  d, vocab = clip_dir
  tok = tk.load_tokenizer(d, context_length=16)
  caption = "\u201cThe  CAT\u2019s\u201d &amp;amp;amp; the\tcat"
  # Hand-worked: ftfy straightens the quotes and unescapes one level of entities,
  # html.unescape twice removes the other two: '"the cat's" & the cat'. CLIP's regex
  # splits it into " the cat 's " & the cat; the tiny vocabulary merges only
  # "the</w>" and "cat</w>", so 's is two tokens.
  assert tk.clean_text(caption) == '"the cat\'s" & the cat'
  want = ['"</w>', "the</w>", "cat</w>", "'", "s</w>", '"</w>', "&</w>", "the</w>",
          "cat</w>"]
  ids = tok.encode([caption])[0]
  np.testing.assert_array_equal(
      ids[:len(want) + 2],
      [vocab["<|startoftext|>"], *[vocab[w] for w in want], vocab["<|endoftext|>"]])
  assert np.all(ids[len(want) + 2:] == 0)
  # Without ftfy the curly quotes would be byte tokens and "&amp;" would survive.
  assert tk.clean_text("\u2018a\u2019 &amp;amp;lt;") == "'a' <"


def test_clip_vocab_without_eot_last_is_rejected(clip_dir):
  d, vocab = clip_dir
  swapped = dict(vocab)
  swapped["<|endoftext|>"], swapped["<|startoftext|>"] = len(vocab) - 2, len(vocab) - 1
  (d / "vocab.json").write_text(json.dumps(swapped))
  with pytest.raises(ValueError, match="highest id"):
    tk.load_tokenizer(d)
