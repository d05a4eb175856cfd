/* Copyright 2026 The fmemp Authors.
 * SPDX-License-Identifier: Apache-2.0
 *
 * tlsf/tlsf_c_usage.h
 *
 * A C11 translation unit that calls the tlsf/tlsf.h API the way the SDK's C
 * code does; tlsf_test.cc runs it. It checks that the header compiles as C
 * and that the calls behave as documented when made from C.
 */

#ifndef FMEMP_TLSF_TLSF_C_USAGE_H_
#define FMEMP_TLSF_TLSF_C_USAGE_H_

#ifdef __cplusplus
extern "C" {
#endif

/* Runs the C usage scenario. Returns 0 when every check passes, otherwise
 * the (nonzero) source line of the first check that failed. */
int tlsf_c_usage_run(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FMEMP_TLSF_TLSF_C_USAGE_H_ */
