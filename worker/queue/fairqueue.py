"""Fair queueing between tenants, inside the broker: the Redis side of
:mod:`worker.queue.transport`.

A queue is first in, first out; a tenant that sends a thousand tests ahead of another's five
would make the five wait for the thousand. So a task message that names its tenant (the
``runner_tenant`` header, which :func:`worker.producer.workflow.canvas` puts on every compile and
test task) is not queued in line. Publishing it (``fair_publish.lua``, one atomic step; this
module's scripts and keys are in :mod:`worker.keyspace`)

- appends it to its tenant's own list, ``<queue>␆␖tenant␆␖<name>``;
- marks the tenant as having work in ``<queue>␆␖tenants``, a sorted set ordered by the tests the
  tenant is running now, then by how long ago it was last served (a tenant new to the set
  first, as fq_codel favours a new flow);
- pushes a *doorbell* (:data:`worker.keyspace.DOORBELL`, not a message) onto the queue's own
  list, which is what consumers wait on; so a waiting consumer wakes at once, and ``LLEN`` of
  the queue still counts every waiting task, tenant's or not (KEDA and ``runner status`` read
  it).

A consumer that pops a doorbell (``fair_claim.lua``) takes, in the same atomic step, the first
message of the tenant that comes first in that set, and records it as claimed, with its tenant,
so that its ack (``fair_release.lua``) counts it off again. Messages without a tenant (the join,
``runner.submit``, anything a foreign producer sends) stay in line with the doorbells, first in,
first out, and are never held back. (A tenant's own messages keep their order and ignore
priority: the fleet sends none.)

**A share of the fleet per tenant.** Choosing the tenant running the fewest is not enough when
one tenant's tests hold their slots for seconds (infinite loops, up to their wall limit): it
would take every slot while the other tenant has nothing waiting, and the other's next test
would wait for one to free. So while another tenant is *active* (has work waiting or running,
or was seen within ``ACTIVE_S`` of ``fair_common.lua``, 3 s), no tenant runs more than
``RUNNER_TENANT_MAX_SHARE_PCT`` of the fleet's slots at once; the slots are what the live
workers' heartbeats report (``_runner.slots``, kept by :class:`worker.queue.transport.Reclaimer`).
A doorbell that finds only such held-back work is *parked* (``<queue>␆␖parked``); each ack
moves one back onto the queue, so the consumer whose slot just freed looks again at once, and
the reclaimer moves all of them back every few seconds, so a share that no longer applies (the
other tenant went idle) frees its work soon. A tenant alone gets the whole fleet.

Every count here is kept in the same scripts that claim and ack, so it cannot drift from
kombu's own record of unacked messages: a message restored to the queue (a dead worker's, or
past the visibility timeout) is counted off as it leaves the unacked hash, and comes back as an
ordinary message of the queue, in line, counted again for its tenant when claimed.

The keys, for queue ``q`` and kombu's separator ``␆␖`` (``\\x06\\x16``): the tenant lists,
``q␆␖tenants``, ``q␆␖running`` (tenant -> tests running), ``q␆␖seen`` (tenant -> when last
active), ``q␆␖served`` (a counter), ``q␆␖parked``, and ``unacked_tenant`` (delivery tag ->
tenant and queue). Their sizes are bounded by the tenants with work, and they hold no
submission's data: they are the fleet's own, like kombu's bindings.
"""

from __future__ import annotations

import re

TENANT_HEADER = "runner_tenant"  # fair_claim.lua reads it too, from a message given back
# the contract's tenant pattern (worker.contract.SubmissionIn.tenant): only such a name becomes
# part of a key; a header with anything else is an ordinary message
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")


def tenant_of_headers(headers: object) -> str | None:
    """The tenant a message's headers name, when it is a valid tenant name; else None."""
    tenant = headers.get(TENANT_HEADER) if isinstance(headers, dict) else None
    return tenant if isinstance(tenant, str) and TENANT_NAME.fullmatch(tenant) else None
