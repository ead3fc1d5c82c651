"""moto server with AWS's paging for the Glue list calls lakelog reads.

moto 5.2.5 ignores MaxResults and NextToken on GetDatabases, GetTables and GetPartitions and
answers with the whole list in one response, and it ignores GetPartitions' Segment. AWS pages
(at most 100 databases or tables and 1,000 partitions a page) and splits partitions into segments.
A catalog with a million partitions therefore arrived in one response of more than a gigabyte,
which neither tests lakelog's paging nor resembles what it meets in production.

This wrapper patches those three responses to page as AWS does (opaque NextToken, MaxResults
capped at AWS's limits), and to honour Segment (each partition belongs to exactly one segment,
chosen by a stable hash of its values), then runs moto's own server with the given arguments.
It also fixes one emulator bug of Lake Formation: moto's BatchGrantPermissions and
BatchRevokePermissions read each entry's grantable permissions from `PermissionsWithGrantOptions`,
but the API (and every SDK) sends `PermissionsWithGrantOption`, so grantable permissions were lost
through the batch calls. The entries are given the name moto reads before moto's own code runs.
Everything else is moto unchanged.
"""

import sys
import zlib

from moto.core.responses import ActionResult
from moto.glue.exceptions import InvalidInputException
from moto.glue.responses import GlueResponse
from moto.lakeformation.models import LakeFormationBackend
from moto.server import main

# AWS's page limits (API reference: MaxResults ranges).
DATABASE_PAGE = 100
TABLE_PAGE = 100
PARTITION_PAGE = 1000


def _page(params, items, limit):
    """Slices `items` by the request's NextToken and MaxResults; returns (page, next_token)."""
    token = params.get("NextToken")
    try:
        start = int(token) if token else 0
    except ValueError:
        raise InvalidInputException("GetPartitions", f"invalid NextToken {token!r}")
    size = params.get("MaxResults") or limit
    size = max(1, min(int(size), limit))
    page = items[start : start + size]
    end = start + len(page)
    return page, (str(end) if end < len(items) else None)


def _result(key, page, token):
    body = {key: page}
    if token is not None:
        body["NextToken"] = token
    return ActionResult(body)


def get_databases(self):
    databases = [d.as_dict() for d in self.glue_backend.get_databases()]
    page, token = _page(self.parameters, databases, DATABASE_PAGE)
    return _result("DatabaseList", page, token)


def get_tables(self):
    params = self.parameters
    tables = self.glue_backend.get_tables(params.get("DatabaseName"), params.get("Expression"))
    page, token = _page(params, tables, TABLE_PAGE)
    return _result("TableList", [t.as_dict() for t in page], token)


def _segment_of(values, total):
    return zlib.crc32("\x00".join(values).encode("utf-8")) % total


def get_partitions(self):
    params = self.parameters
    partitions = self.glue_backend.get_partitions(
        params.get("DatabaseName"), params.get("TableName"), params.get("Expression")
    )
    segment = params.get("Segment")
    if segment:
        number, total = int(segment["SegmentNumber"]), int(segment["TotalSegments"])
        partitions = [p for p in partitions if _segment_of(p.partition_input.get("Values", []), total) == number]
    page, token = _page(params, partitions, PARTITION_PAGE)
    return _result("Partitions", [p.as_dict() for p in page], token)


def _grant_option_name(batch):
    """Wraps moto's batch grant/revoke so entries carry the field name moto reads (emulator bug)."""

    def patched(self, catalog_id, entries):
        for entry in entries or []:
            if "PermissionsWithGrantOption" in entry and "PermissionsWithGrantOptions" not in entry:
                entry["PermissionsWithGrantOptions"] = entry["PermissionsWithGrantOption"]
        return batch(self, catalog_id, entries)

    return patched


LakeFormationBackend.batch_grant_permissions = _grant_option_name(LakeFormationBackend.batch_grant_permissions)
LakeFormationBackend.batch_revoke_permissions = _grant_option_name(LakeFormationBackend.batch_revoke_permissions)

GlueResponse.get_databases = get_databases
GlueResponse.get_tables = get_tables
GlueResponse.get_partitions = get_partitions

if __name__ == "__main__":
    sys.exit(main())
