"""Model soups: the uniform mean, ingredients that do not fit or start elsewhere refused, the greedy soup's picks
on a scripted held-out score."""
import math

import pytest
import torch

from bench.overrides import apply_overrides
from bench.remedies.soup import SoupRecipe, average_tensors, greedy_soup, same_initialisation


def ingredients(count: int = 3) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    return [{"head.weight": torch.randn(4, 6, generator=generator), "lora.up": torch.randn(6, generator=generator),
             "steps": torch.tensor(7)} for _ in range(count)]


def test_the_uniform_soup_is_the_mean_of_each_tensor():
    parts = ingredients()
    soup = average_tensors(parts)
    assert soup.keys() == parts[0].keys()
    for name in ("head.weight", "lora.up"):
        assert soup[name].dtype == torch.float32
        assert torch.allclose(soup[name], torch.stack([p[name] for p in parts]).mean(dim=0), atol=1e-6)
    assert torch.equal(soup["steps"], torch.tensor(7))  # equal integer tensors are kept as they are
    assert all(torch.equal(average_tensors(parts[:1])[n], parts[0][n]) for n in parts[0])


def test_ingredients_that_do_not_fit_are_refused():
    parts = ingredients()
    for changed, problem in (({"lora.up": torch.randn(7)}, r"lora.up is torch.float32 \(7,\)"),
                             ({"lora.up": torch.randn(6, dtype=torch.float64)}, "lora.up is torch.float64"),
                             ({"steps": torch.tensor(8)}, "differ in steps")):
        with pytest.raises(ValueError, match=problem):
            average_tensors([parts[0], {**parts[1], **changed}])
    with pytest.raises(ValueError, match="ingredient 1 does not fit ingredient 0: it lacks lora.up"):
        average_tensors([parts[0], {"head.weight": parts[1]["head.weight"], "steps": parts[1]["steps"]}])
    with pytest.raises(ValueError, match="at least one"):
        average_tensors([])


def test_only_fine_tunings_of_one_initialisation_are_souped():
    initial = {"initial.head.weight": torch.randn(4, 6), "initial.lora.up": torch.zeros(6)}
    copies = [{name: value.clone() for name, value in initial.items()} for _ in range(3)]
    assert same_initialisation(copies) is None and same_initialisation([initial]) is None
    copies[2]["initial.lora.up"][1] = 1e-6
    message = same_initialisation(copies)
    assert "ingredient 2" in message and "initial.lora.up" in message
    assert "only fine-tunings of one initialisation can be souped" in message
    assert "lacks initial.lora.up" in same_initialisation([initial, {"initial.head.weight": initial[
        "initial.head.weight"]}])


def scripted(scores: dict[frozenset, float], asked: list):
    """A held-out score per set of ingredients, recording each set asked for."""
    def held_out(indices: list[int]) -> float:
        asked.append(list(indices))
        return scores[frozenset(indices)]
    return held_out


def test_greedy_soup_adds_by_own_score_and_skips_an_ingredient_that_lowers_the_soup():
    own = [70.0, 80.0, 75.0, 60.0]  # order: 1, 2, 0, 3
    soups = {frozenset({1, 2}): 81.0, frozenset({1, 2, 0}): 79.0, frozenset({1, 2, 3}): 81.0}
    asked = []
    chosen, trace = greedy_soup(own, scripted(soups, asked))
    assert asked == [[1, 2], [1, 2, 0], [1, 2, 3]]
    assert chosen == [1, 2, 3]  # 0 lowered the soup's score; 3 kept it equal (Recipe 1's >=)
    assert [(step["ingredient"], step["kept"]) for step in trace] == [(1, True), (2, True), (0, False), (3, True)]
    assert trace[0]["soup_score"] == 80.0 and trace[2] == {"ingredient": 0, "score": 70.0, "soup_score": 79.0,
                                                            "kept": False}
    assert greedy_soup([55.0], scripted({}, [])) == ([0], [{"ingredient": 0, "score": 55.0, "soup_score": 55.0,
                                                            "kept": True}])
    with pytest.raises(ValueError, match="nan"):
        greedy_soup([1.0, math.nan], scripted({}, []))
    with pytest.raises(ValueError, match="ingredient 0"):
        greedy_soup([1.0, 2.0], scripted({frozenset({0, 1}): math.nan}, []))


def test_soup_recipe_is_set_from_the_command_line():
    assert SoupRecipe().greedy
    assert not apply_overrides(SoupRecipe(), {"greedy": "false"}, "soup").greedy
