"""Hook that opens the lake and the report store: local directories by default, S3 in production."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from mlops_provider.config import paths
from mlops_provider.hooks.masking import safe_uri

if TYPE_CHECKING:
    from mlops_provider.io.lake import Lake


class LakeHook(BaseHook):
    """Builds :class:`~mlops_provider.io.lake.Lake` objects from an ``mlops_lake`` connection.

    Connection extra: ``{"lake_uri": "s3://bucket/lake", "reports_uri": "s3://bucket/reports",
    "aws_conn_id": "aws_default"}``. Without the connection the embedded default under MLOPS_HOME
    (or the ``MLOPS_LAKE_URI`` / ``MLOPS_REPORTS_URI`` environment variables) is used.
    """

    conn_name_attr = "lake_conn_id"
    default_conn_name = "mlops_lake_default"
    conn_type = "mlops_lake"
    hook_name = "MLOps lake"

    def __init__(self, lake_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lake_conn_id = lake_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["host", "schema", "login", "password", "port"],
            "relabeling": {},
            "placeholders": {"extra": '{"lake_uri": "s3://bucket/lake", "reports_uri": "s3://bucket/reports", '
                                      '"aws_conn_id": "aws_default"}'},
        }

    def _extra(self) -> dict[str, Any]:
        from mlops_provider.hooks.masking import mask_connection_secrets

        try:
            extra = self.get_connection(self.lake_conn_id).extra_dejson
        except Exception:  # AirflowNotFoundException: no connection means the embedded default
            return {}
        mask_connection_secrets(extra)  # e.g. a password inside lake_uri / reports_uri
        return extra

    def _filesystem(self, uri: str, extra: dict[str, Any]):
        if not uri.startswith("s3://"):
            return None
        import pyarrow.fs as pafs
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        aws = AwsBaseHook(aws_conn_id=extra.get("aws_conn_id", "aws_default"), client_type="s3")
        creds = aws.get_credentials()
        endpoint = aws.conn_config.endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
        return pafs.S3FileSystem(
            access_key=creds.access_key, secret_key=creds.secret_key, session_token=creds.token,
            endpoint_override=endpoint, region=aws.region_name or "us-east-1",
            scheme="http" if endpoint and endpoint.startswith("http://") else "https",
        )

    def get_conn(self) -> Lake:
        """The data lake."""
        from mlops_provider.io.lake import Lake

        extra = self._extra()
        uri = extra.get("lake_uri") or paths.lake_uri()
        return Lake(uri, filesystem=self._filesystem(uri, extra))

    def get_reports(self) -> Lake:
        """The report store (validation results, drift reports)."""
        from mlops_provider.io.lake import Lake

        extra = self._extra()
        uri = extra.get("reports_uri") or paths.reports_uri()
        return Lake(uri, filesystem=self._filesystem(uri, extra))

    def browser_url(self, uri: str) -> str:
        """A link a person can open that carries no credential: ``file://`` as it is, an ``s3://`` object as
        its page in the AWS S3 console (opened with the person's own AWS login).

        Extra links end up in XCom (Airflow 3 calls ``get_link`` when the task finishes and stores its
        result), so they must never be presigned URLs: one is a bearer credential for days. With a custom
        S3 endpoint (MinIO, LocalStack: ``AWS_ENDPOINT_URL`` or the AWS connection's ``endpoint_url``) there
        is no console page, and the plain ``s3://`` URI is linked.
        """
        if not uri.startswith("s3://"):
            return uri
        from urllib.parse import quote

        if os.environ.get("AWS_ENDPOINT_URL") or self._aws_endpoint():
            return uri
        bucket, _, key = uri[len("s3://"):].partition("/")
        return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"

    def _aws_endpoint(self) -> str | None:
        try:
            from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

            return AwsBaseHook(aws_conn_id=self._extra().get("aws_conn_id", "aws_default"),
                               client_type="s3").conn_config.endpoint_url
        except Exception:  # no AWS connection: the default endpoint
            return None

    def test_connection(self) -> tuple[bool, str]:
        try:
            lake = self.get_conn()
            lake.fs.get_file_info(lake.root)
            return True, f"lake reachable at {safe_uri(lake.root_uri)}"
        except Exception as exc:
            from mlops_provider.domain.alerts import redact

            return False, redact(exc)
