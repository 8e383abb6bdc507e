import torch

from bench.models.word_tokenizer import PAD, START, UNKNOWN, WordTokenizer


def test_ids_padding_unknown_words_and_truncation():
    tok = WordTokenizer(["a", "red", "star"], context_length=5)
    assert tok.vocab_size == 7 and tok.end == 6
    out = tok(["a red star.", "A purple star", "a a a a a a"])
    assert out.shape == (3, 5) and out.dtype == torch.long
    assert out[0].tolist() == [START, 3, 4, 5, tok.end]
    assert out[1].tolist() == [START, 3, UNKNOWN, 5, tok.end]
    assert out[2].tolist() == [START, 3, 3, 3, tok.end]  # truncated, the end token kept
    assert tok("red").tolist() == [[START, 4, tok.end, PAD, PAD]]
    assert tok.unknown_words("a purple star") == ["purple"]
    assert out.argmax(-1).tolist() == [4, 4, 4]  # where open_clip's text tower pools
