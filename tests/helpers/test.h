/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What every Criterion test file includes instead of criterion.h: its
 * assertion macros declare variables where they stand, which the project's
 * -Wdeclaration-after-statement rejects; the pragma turns that one warning
 * off for the test's file, so that tests build with the defaults of
 * Makefile.am and need no flags of their own.
 */
#pragma once

#pragma GCC diagnostic ignored "-Wdeclaration-after-statement"
#include <criterion/criterion.h>
