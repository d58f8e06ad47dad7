"""What every operator of the provider shares: domain errors mapped to Airflow's retry semantics, once.

The layers below the operators (``config``, ``domain``, ``io``, ``stages``) raise plain Python errors
(:mod:`mlops_provider.exceptions`). An error whose class says ``retryable = False`` (bad input, a bad
config, contradictory params) becomes :class:`~airflow.sdk.exceptions.AirflowFailException` here, so
Airflow fails the task at once instead of retrying what cannot succeed; every other error is retried.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseBranchOperator, BaseOperator


def fail_fast_on_fatal_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` with non-retryable domain errors raised as ``AirflowFailException`` (same message)."""

    @functools.wraps(method)
    def wrapper(self: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
        from mlops_provider.exceptions import MlopsError

        try:
            return method(self, context, *args, **kwargs)
        except MlopsError as exc:
            if exc.retryable:
                raise
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return wrapper


class _DomainErrorMapping:
    """Wraps the ``execute`` (and ``choose_branch``) a subclass defines with :func:`fail_fast_on_fatal_errors`."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("execute", "choose_branch"):
            if name in cls.__dict__:
                setattr(cls, name, fail_fast_on_fatal_errors(cls.__dict__[name]))


class MlopsBaseOperator(_DomainErrorMapping, BaseOperator):
    """Base of the provider's operators."""


class MlopsBaseBranchOperator(_DomainErrorMapping, BaseBranchOperator):
    """Base of the provider's branching operators."""
