import numpy as np
import pytest

from bench.data import build_dataset, dataset_config
from bench.data.demo import DemoLT
from bench.data.shapes import (COLOURS, CONCEPTS, PATTERNS, SHAPES, STYLES, concept_name, concept_words,
                               latin_square_concepts, render)
from bench.models.backbone import DEMO_MODEL, PROMPT, tokenizer_for


def test_generator_is_deterministic_per_seed():
    concepts = np.arange(0, CONCEPTS, 37)
    for style in STYLES:
        first = render(concepts, style, np.random.default_rng(3))
        again = render(concepts, style, np.random.default_rng(3))
        other = render(concepts, style, np.random.default_rng(4))
        assert first.dtype == np.uint8 and first.shape == (len(concepts), 32, 32, 3)
        assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_every_shape_pattern_and_colour_is_drawn_differently():
    """Fixed pose and background: changing one word of a concept changes the image."""
    base = int(np.ravel_multi_index((2, 3, 4), (10, 10, 10)))
    variants = [base] + [int(np.ravel_multi_index(w, (10, 10, 10))) for w in
                         [(2, 3, s) for s in range(10) if s != 4] + [(2, p, 4) for p in range(10) if p != 3]
                         + [(c, 3, 4) for c in range(10) if c != 2]]
    images = render(np.array(variants), "clean", np.random.default_rng(0)).astype(int)
    distinct = {images[i].tobytes() for i in range(len(variants))}
    assert len(distinct) == len(variants)
    with pytest.raises(ValueError, match="unknown style 'sketch'"):
        render(np.array([0]), "sketch", np.random.default_rng(0))


def test_latin_square_classes_share_no_pair_of_words():
    concepts = latin_square_concepts()
    words = np.array([concept_words(c) for c in concepts])
    assert len(set(concepts)) == 100
    for column in range(3):
        assert np.all(np.bincount(words[:, column], minlength=10) == 10)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        assert len({(x[a], x[b]) for x in words}) == 100
    assert concept_name(concepts[0]).split()[0] in COLOURS
    assert concept_name(123) == f"{list(COLOURS)[1]} {PATTERNS[2]} {SHAPES[3]}"


def test_demo_lt_has_the_cifar_lt_profile_and_a_balanced_test():
    data = build_dataset(dataset_config("demo_lt"), "unused")
    counts = data.train_class_counts
    expected = [int(150 * (1 / 100) ** (i / 99)) for i in range(100)]
    assert counts.tolist() == expected and counts.sum() == 3218 and counts[-1] == 1
    assert [len(g) for g in data.groups.as_dict().values()] == [9, 35, 56]
    assert np.all(np.bincount(data.test.labels) == 20)
    assert len(set(data.classnames)) == 100
    tokenizer = tokenizer_for(DEMO_MODEL)
    assert not any(tokenizer.unknown_words(PROMPT.format(name)) for name in data.classnames)
    assert data.fingerprint == DemoLT().build(None, False).fingerprint != DemoLT(seed=1).build(None, False).fingerprint
