"""--random-extractors: every random tiny extractor comes from a fixed seed of its own, so corpus preparation
and inference (any run, any --seed, any global RNG state) build the very same extractors."""

import torch

from visual.frontend import VisualFrontEnd, extractor_config

EXTRACTORS = ("avhubert", "arcface", "expression")


def built_weights(global_seed: int) -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(global_seed)
    before = torch.get_rng_state()
    frontend = VisualFrontEnd(extractor_config(random_extractors=True), lip_dim=32, face_dim=32)
    weights = {name: getattr(frontend, name).state_dict() for name in EXTRACTORS}
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left alone
    return weights


def test_random_extractors_do_not_depend_on_the_global_rng():
    first, second = built_weights(0), built_weights(1234)
    for name in EXTRACTORS:
        assert first[name].keys() == second[name].keys()
        assert all(torch.equal(first[name][key], second[name][key]) for key in first[name]), name


def test_extractor_config_names_the_registry_weights_unless_random():
    assert extractor_config().arcface == "arcface-iresnet100" and extractor_config().random_weights is None
    random = extractor_config(random_extractors=True, arcface="mine.pth")
    assert (random.avhubert, random.arcface, random.expression_weights, random.random_weights) == (
        None, "mine.pth", None, "tiny")
