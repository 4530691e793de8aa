/* SPDX-License-Identifier: BSD-2-Clause */
/* Repository URLs: /path, local:/path, rest:http[s]://..., dav:http[s]://...,
 * etcd:http://h1:2379[,http://h2:2379...]/prefix. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

enum lw__url_kind { LW__URL_LOCAL, LW__URL_REST, LW__URL_DAV, LW__URL_ETCD };

struct lw__endpoint {
	bool tls;
	char *host; /* without brackets */
	int port;
	char *base; /* "http://host:port" without credentials */
};

struct lw__url {
	enum lw__url_kind kind;
	/* local: an absolute path without a trailing slash; rest and dav: the
	 * path, starting and ending with '/'; etcd: the key prefix */
	char *path;
	struct lw__endpoint *ep;
	size_t nep;
	char *user;     /* percent-decoded, NULL when absent */
	char *password;
	char *display;  /* the URL with the password replaced by "***" */
};

/*
 * lw__url_parse - parse S into U.  A relative local path is made absolute
 * against the current directory.
 *
 * Returns: 0, -EINVAL with a message in ERR that never repeats a password,
 * -ENOMEM.
 */
int lw__url_parse(const char *s, struct lw__url *u, char *err, size_t errsize);
void lw__url_fini(struct lw__url *u);
