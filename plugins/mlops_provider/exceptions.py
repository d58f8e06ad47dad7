"""The provider's errors (every layer raises them); each message names what failed and where the full details are.

Plain Python: the Airflow layer maps them once (``operators.base``): an error whose class says
``retryable = False`` fails the task without retries (``AirflowFailException``), any other is retried.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Base class of every error this provider raises on purpose."""

    #: Whether a retry of the same task may succeed (a service outage) or never can (bad input, bad config).
    retryable = True


class ProjectConfigError(MlopsError):
    """A project YAML is invalid; the message names the file, the key and the problem."""

    retryable = False


class SourceError(MlopsError):
    """The source could not be read for the requested interval."""


class DataValidationError(MlopsError):
    """A batch failed its Great Expectations suite and was quarantined (retrying cannot help)."""

    retryable = False

    def __init__(self, message: str, *, failed: list[str], result_path: str, quarantine_path: str,
                 data_docs_url: str | None = None):
        super().__init__(message)
        self.failed = failed
        self.result_path = result_path
        self.quarantine_path = quarantine_path
        self.data_docs_url = data_docs_url


class FeatureFreshnessError(MlopsError):
    """Values read back from the online store do not match the offline values."""


class FeatureDefinitionError(MlopsError):
    """The feature store's answer does not match the project's declared features (a platform bug, not data)."""

    retryable = False


class TrainingDataError(MlopsError):
    """Not enough labelled data to train or evaluate a model (a retry minutes later sees the same data)."""

    retryable = False



class ModelOpsRequestError(MlopsError):
    """A manual promote / rollback request whose params contradict each other (retrying cannot help)."""

    retryable = False


class ModelNotFoundError(MlopsError):
    """A registered model, version or alias does not exist."""


class UntrustedModelError(ModelNotFoundError):
    """A model version this pipeline does not load: not registered by its training, or not a skops model
    with the provider's pinned types (loading it could run code from the artifact store; retrying cannot help)."""

    retryable = False
