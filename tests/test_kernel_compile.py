"""Every Triton kernel form that ``fast`` launches on CUDA compiles for Hopper (sm_90) here, without a GPU
(``tools.kernel_compile``): Triton's interpreter, which the kernels' other CPU tests use, accepts code that its
compiler rejects."""

from __future__ import annotations

import pytest

from tools.kernel_compile import KernelForm, collected_forms, compiled_size, main

triton = pytest.importorskip("triton", reason="rife.triton_warp needs Triton")

# One release of each pass and head: the paper (refinement, one unshuffled phase), v4.0 (the retry), v3.6 (the
# ensemble, split heads), v3.8 (its trial decided on the host), 4.6 (two phases, no carried channels), 4.25 (carried
# channels through the gather, with two phases).
RELEASES = ("paper", "v4.0", "v3.6", "v3.8", "4.6", "4.25")
SIZE = (720, 1280)


def ptxas_missing() -> bool:
    try:
        from triton import knobs

        return knobs.nvidia.ptxas.path is None
    except Exception:  # noqa: BLE001  # a Triton without the NVIDIA backend or its ptxas
        return True


@pytest.mark.skipif(ptxas_missing(), reason="Triton's NVIDIA backend and its ptxas are not here")
@pytest.mark.parametrize("release", RELEASES)
def test_every_kernel_form_of_fast_compiles_for_hopper(release: str) -> None:
    forms = collected_forms(release, SIZE, 1)
    names = {form.name for form in forms}
    assert "_step_kernel" in names and ({"_feed_kernel", "_gather_kernel"} & names), names
    for form, fn in forms.items():
        assert compiled_size(form, fn, 90) > 1000, f"{release}: {form.name} {dict(form.constexprs)}"


def test_forms_are_told_apart_by_their_types_and_constexprs() -> None:
    forms = collected_forms("v4.0", SIZE, 1)
    steps = [f for f in forms if f.name == "_step_kernel"]
    # The first step (no running state), the retry's block (measured), the later ones, the last (two candidates,
    # the blend): forms of one kernel, each with its own constexprs.
    assert len(steps) >= 3 and len({f.constexprs for f in steps}) == len(steps)
    phases = {dict(f.constexprs)["PHASES"] for f in steps}
    assert phases == {1}, f"v4.0's heads leave one pixel shuffle to the step: {phases}"
    one = next(iter(forms))
    assert isinstance(one, KernelForm) and all(kind for _, kind in one.signature)


@pytest.mark.skipif(ptxas_missing(), reason="Triton's NVIDIA backend and its ptxas are not here")
def test_the_command_reports_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--releases", "v4.0", "--sizes", "640x360"]) == 0
    out = capsys.readouterr().out
    assert "v4.0 640x360 batch 1:" in out and "kernel forms compiled for sm_90" in out
