"""GetRecords with the answer read by orjson instead of botocore's parser.

botocore turns an answer into Python objects by walking the service model
for every field of every record. For a page of 10,000 small records that walk
costs more than decoding the readings in it (bench/results.md). This module
sends the same request, signed by the same boto3 client's signer, through that
client's own HTTP session (so timeouts, proxies, TLS and connection errors are
exactly boto3's), and reads a successful answer itself.

Only GetRecords goes this way; every other call stays on boto3. An error
answer is parsed by botocore and raised as the same ClientError boto3 would
raise, so ``classify`` sees no difference. An answer of a shape this parser
does not expect raises ``ParseDoubt``, and the caller asks boto3 instead.

The request goes to the client's base endpoint: the endpoint rules send a
GetRecords call without a StreamARN there, which is the only kind made here.
"""

import binascii
from datetime import datetime, timezone

import botocore
import botocore.client
import botocore.parsers
import orjson
from botocore.awsrequest import AWSRequest
from botocore.hooks import first_non_none_response

from worker.kinesis.client import Page, StreamRecord

OPERATION = "GetRecords"


class ParseDoubt(Exception):
    """The answer is not what this parser expects; boto3 must read it."""


def fits(boto_client) -> bool:
    """Whether ``boto_client`` is a real botocore Kinesis client speaking the
    JSON protocol (a wrapped or fake client is left to boto3)."""
    if not isinstance(boto_client, botocore.client.BaseClient):
        return False
    model = boto_client.meta.service_model
    return (model.service_name == "kinesis" and model.protocol == "json"
            and OPERATION in model.operation_names)


class FastGetRecords:
    def __init__(self, boto_client):
        self._client = boto_client
        model = boto_client.meta.service_model
        self._operation = model.operation_model(OPERATION)
        # The JSON protocol posts to the endpoint's root path, as boto3 does.
        self._url = boto_client.meta.endpoint_url.rstrip("/") + "/"
        self._headers = {
            "X-Amz-Target": f"{model.metadata['targetPrefix']}.{OPERATION}",
            "Content-Type":
                f"application/x-amz-json-{model.metadata['jsonVersion']}",
            "User-Agent": f"Botocore/{botocore.__version__} ven-worker",
        }
        # The client's own signer and HTTP session: the same credentials,
        # region, timeouts and connection pool as every boto3 call.
        self._signer = boto_client._request_signer
        self._http = boto_client._endpoint.http_session
        # boto3 offers each request to this event before sending it; moto
        # answers there, so offering it here too keeps moto working.
        self._events = boto_client.meta.events
        self._before_send = f"before-send.{model.service_id.hyphenize()}." \
                            f"{OPERATION}"
        self._error_parser = botocore.parsers.create_parser(model.protocol)

    def get_records(self, ShardIterator: str, Limit: int) -> Page:
        """One attempt; argument names as boto3's, so the retrying wrapper
        can call either."""
        body = orjson.dumps({"ShardIterator": ShardIterator, "Limit": Limit})
        request = AWSRequest("POST", self._url, dict(self._headers), body)
        self._signer.sign(OPERATION, request)
        prepared = request.prepare()
        answers = self._events.emit(self._before_send, request=prepared)
        response = first_non_none_response(answers)
        if response is None:
            response = self._http.send(prepared)
        if response.status_code != 200:
            self._raise_error(response)
        return parse_page(response.content)

    def _raise_error(self, response) -> None:
        parsed = self._error_parser.parse(
            {"status_code": response.status_code, "headers": response.headers,
             "body": response.content},
            self._operation.output_shape)
        metadata = parsed.setdefault("ResponseMetadata", {})
        metadata.setdefault("HTTPStatusCode", response.status_code)
        code = parsed.get("Error", {}).get("Code", "")
        raise self._client.exceptions.from_code(code)(parsed, OPERATION)


def parse_page(body: bytes) -> Page:
    """A GetRecords answer as a Page; ParseDoubt when it is not one."""
    try:
        answer = orjson.loads(body)
        records = []
        size = 0
        for r in answer["Records"]:
            sequence = r["SequenceNumber"]
            if type(sequence) is not str:
                raise ParseDoubt("a SequenceNumber is not a string")
            data = binascii.a2b_base64(r["Data"])
            size += len(data)
            arrived = r.get("ApproximateArrivalTimestamp")
            if arrived is not None:
                arrived = datetime.fromtimestamp(arrived, timezone.utc)
            records.append(StreamRecord(sequence, data,
                                        r.get("PartitionKey", ""), arrived))
        children = [c["ShardId"] for c in answer.get("ChildShards") or ()]
        page = Page(records=records,
                    next_iterator=answer.get("NextShardIterator"),
                    millis_behind_latest=answer.get("MillisBehindLatest"),
                    child_shard_ids=children, size_bytes=size)
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError,
            OSError) as exc:
        # ValueError covers orjson's and binascii's errors; OSError and
        # OverflowError a timestamp out of the platform's range.
        raise ParseDoubt(f"{type(exc).__name__}: {exc}") from exc
    return page
