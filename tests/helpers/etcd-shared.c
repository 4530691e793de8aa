/* SPDX-License-Identifier: BSD-2-Clause */
/* Linked into a test binary, this runs one etcd cluster for all its tests
 * (see tests/helpers/etcd.h). */
#include "config.h"

#include "test.h"
#include <criterion/hooks.h>

#include "etcd.h"

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	lwt_etcd_shared_start();
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	lwt_etcd_shared_stop();
}
