from __future__ import annotations

import pytest

from engines.local_errors import MissingModelFolder, NoChatTemplate, describe_load_error


class RepositoryNotFoundError(OSError):
    """Named like huggingface_hub's, which the description recognises by name."""


class OutOfMemoryError(RuntimeError):
    """Named like torch's."""


def chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("error", "offline", "expected"),
    [
        (OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"), False, "out of memory"),
        (MemoryError(), False, "quantization = '4bit'"),
        (ValueError("... set an offload_folder ..."), False, "out of memory loading org/m"),
        (ModuleNotFoundError("x", name="bitsandbytes"), False, "pip install bitsandbytes"),
        (ModuleNotFoundError("x", name="sentencepiece.sub"), False, "pip install sentencepiece"),
        (chained(OSError("wrapped"), RepositoryNotFoundError("404")), False, "`hf auth login`"),
        (OSError("We couldn't connect to 'https://huggingface.co'"), True, "HF_HUB_OFFLINE is set"),
        (OSError("We couldn't connect to 'https://huggingface.co'"), False, "(no internet?)"),
        (NoChatTemplate("org/m"), False, "no chat template: use hf-chatml:org/m"),
        (MissingModelFolder("no model folder at ./m"), False, "no model folder at ./m: check"),
        (ValueError("Unrecognized model " + "x" * 500), False, "could not load org/m (ValueError"),
    ],
)
def test_each_failure_names_its_reason_and_fix(
    error: BaseException, offline: bool, expected: str
) -> None:
    detail = describe_load_error(error, target="org/m", offline=offline)
    assert expected in detail
    assert len(detail) < 400 and "\n" not in detail
