"""Domain errors; each message names what failed and where the full details are."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class MlopsError(AirflowException):
    """Base class of every error this provider raises on purpose."""


class ProjectConfigError(MlopsError, AirflowFailException):
    """A project YAML is invalid; the message names the file, the key and the problem."""


class SourceError(MlopsError):
    """The source could not be read for the requested interval."""


class DataValidationError(MlopsError, AirflowFailException):
    """A batch failed its Great Expectations suite and was quarantined (retrying cannot help)."""

    def __init__(self, message: str, *, failed: list[str], result_path: str, quarantine_path: str,
                 data_docs_url: str | None = None):
        super().__init__(message)
        self.failed = failed
        self.result_path = result_path
        self.quarantine_path = quarantine_path
        self.data_docs_url = data_docs_url


class FeatureFreshnessError(MlopsError):
    """Values read back from the online store do not match the offline values."""


class TrainingDataError(MlopsError):
    """Not enough labelled data to train or evaluate a model."""


class PromotionRefused(MlopsError):
    """A challenger did not pass the promotion gate (raised only where a refusal must fail a task)."""


class ModelOpsRequestError(MlopsError, AirflowFailException):
    """A manual promote / rollback request whose params contradict each other (retrying cannot help)."""


class ModelNotFoundError(MlopsError):
    """A registered model, version or alias does not exist."""
