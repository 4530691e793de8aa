/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the three servers answered, probed by hand with curl (Debian 12:
 * Apache 2.4 mod_dav_fs, nginx 1.22 + dav-ext 3.0, rclone 1.60), on
 * /repo/locks/ holding a file, a file named "odd name %.txt" and a
 * subfolder sub/; tests/lib/test-webdav.c checks the same against each:
 *
 *                                Apache       nginx+dav-ext  rclone
 *   PROPFIND Depth:1 locks/      207          207            207
 *     hrefs                      paths, %-encoded, folders end in '/',
 *                                the collection itself listed first
 *     namespace                  D: (lp1:,    D:             D:, collection
 *                                g0: inside)                 redeclares D:
 *     getcontentlength of dirs   404 propstat absent         404 propstat
 *   PROPFIND without a body      207 (allprop, as RFC 4918 says)
 *   PROPFIND missing folder      404          404            404
 *   MKCOL existing folder        405          405            201 (!)
 *   MKCOL "locks" (no slash)     405          409            201
 *   MKCOL, parent missing        409          409            409
 *   PUT, folder missing          409          500            404
 *   PUT If-None-Match: * on an   412, file    204, file      201, file
 *     existing file              kept         overwritten    overwritten
 *   DELETE existing / missing    204 / 404    204 / 404      204 / 404
 *   GET locks/                   404 (no      autoindex      an HTML page
 *                                index)       JSON
 *   plain nginx (no dav-ext): PROPFIND is 405 with an HTML page.
 *
 * So If-None-Match is a courtesy only Apache honours, MKCOL's 405 means
 * "already there" but rclone says 201 either way, and no two servers
 * agree on a PUT into a missing folder.
 *
 * Each server runs as root when the test does, except Apache, which
 * refuses to: it runs as www-data, which owns the data directory.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nginx.h"
#include "webdav.h"

#define APACHE "/usr/sbin/apache2"
#define APACHE_MODULES "/usr/lib/apache2/modules"
#define NGINX "/usr/sbin/nginx"
#define DAV_EXT "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"
#define RCLONE "/usr/bin/rclone"
#define APACHE_USER "www-data"

struct lwt_webdav {
	enum lwt_webdav_kind kind;
	char dir[64];  /* configuration, logs, lock database */
	char root[96]; /* what the server stores */
	int port;
	pid_t pid;
	uid_t uid;     /* the server's user, for files the test plants */
	gid_t gid;
};

const char *lwt_webdav_name(enum lwt_webdav_kind kind)
{
	static const char *const names[] = { "apache", "nginx-dav-ext", "rclone" };

	return names[kind];
}

static bool keep_listings;

void lwt_webdav_keep_listings(bool on)
{
	keep_listings = on;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int write_apache(const struct lwt_webdav *w, FILE *f)
{
	static const char *const modules[] = {
		"mpm_event", "authn_core", "authn_file", "authz_core", "authz_user",
		"auth_basic", "auth_digest", "dav", "dav_fs",
	};

	fprintf(f, "ServerRoot %1$s\nServerName 127.0.0.1\nListen 127.0.0.1:%2$d\n"
		"PidFile %1$s/run/httpd.pid\nDefaultRuntimeDir %1$s/run\n",
		w->dir, w->port);
	for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
		fprintf(f, "LoadModule %1$s_module " APACHE_MODULES "/mod_%1$s.so\n",
			modules[i]);
	if (geteuid() == 0)
		fprintf(f, "User " APACHE_USER "\nGroup " APACHE_USER "\n");
	fprintf(f,
		"ErrorLog %1$s/error.log\n"
		"LogFormat \"%%m %%U %%>s inm=%%{If-None-Match}i user=%%u "
		"%%{sec}t.%%{msec_frac}t %%Dus %%X\" lwt\n"
		"CustomLog %1$s/access.log lwt\n"
		"DocumentRoot %2$s\n"
		"DavLockDB %1$s/run/davlock\n"
		"<Directory %2$s>\n  Dav On\n  Require all granted\n</Directory>\n"
		"<Location /basic/>\n  AuthType Basic\n  AuthName " LWT_WEBDAV_REALM "\n"
		"  AuthUserFile %1$s/htpasswd\n  Require valid-user\n</Location>\n"
		"<Location /digest/>\n  AuthType Digest\n  AuthName " LWT_WEBDAV_REALM "\n"
		"  AuthDigestDomain /digest/\n  AuthUserFile %1$s/htdigest\n"
		"  Require valid-user\n</Location>\n",
		w->dir, w->root);
	return 0;
}

static int write_nginx(const struct lwt_webdav *w, FILE *f)
{
	fprintf(f, "load_module " DAV_EXT ";\n");
	if (geteuid() == 0)
		fprintf(f, "user root;\n");
	fprintf(f,
		"worker_processes 1;\n"
		"pid %1$s/nginx.pid;\n"
		"error_log %1$s/error.log warn;\n"
		"events { worker_connections 1024; }\n"
		"http {\n"
		"  log_format lwt '$request_method $request_uri $status "
		"inm=$http_if_none_match user=$remote_user $msec';\n"
		"  access_log %1$s/access.log lwt;\n"
		"  client_body_temp_path %1$s/tmp;\n"
		"  server {\n"
		"    listen 127.0.0.1:%2$d;\n"
		"    root %3$s;\n"
		"    location / {\n"
		"      dav_methods PUT DELETE MKCOL;\n"
		"      dav_ext_methods PROPFIND OPTIONS;\n"
		"      dav_access user:rw group:r all:r;\n"
		"      autoindex on;\n"
		"      autoindex_format json;\n"
		"    }\n"
		"  }\n"
		"}\n",
		w->dir, w->port, w->root);
	return 0;
}

static int write_config(const struct lwt_webdav *w)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/server.conf", w->dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	if (w->kind == LWT_WEBDAV_APACHE)
		write_apache(w, f);
	else if (w->kind == LWT_WEBDAV_NGINX)
		write_nginx(w, f);
	return fclose(f) == 0 ? 0 : -1;
}

/* The user of /basic/ and /digest/: htpasswd hashes for Basic; Digest's
 * file holds MD5(user:realm:password), which is what htdigest writes. */
static int write_passwords(const struct lwt_webdav *w)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd),
		 "cd %s && htpasswd -bcB htpasswd %s %s 2>/dev/null && "
		 "printf '%%s:%%s:%%s\\n' %s %s \"$(printf %%s %s:%s:%s | md5sum | cut -c1-32)\" "
		 "> htdigest",
		 w->dir, LWT_WEBDAV_USER, LWT_WEBDAV_PASSWORD, LWT_WEBDAV_USER,
		 LWT_WEBDAV_REALM, LWT_WEBDAV_USER, LWT_WEBDAV_REALM, LWT_WEBDAV_PASSWORD);
	return system(cmd) == 0 ? 0 : -1;
}

static int prepare(struct lwt_webdav *w)
{
	char path[128];

	snprintf(w->dir, sizeof(w->dir), "/tmp/lwt-%s-XXXXXX", lwt_webdav_name(w->kind));
	if (!mkdtemp(w->dir))
		return -1;
	snprintf(w->root, sizeof(w->root), "%s/data", w->dir);
	snprintf(path, sizeof(path), "%s/run", w->dir);
	/* Apache's user walks through the directory to its data */
	if (chmod(w->dir, 0755) < 0 || mkdir(w->root, 0755) < 0 || mkdir(path, 0755) < 0)
		return -1;
	snprintf(path, sizeof(path), "%s/tmp", w->dir);
	if (mkdir(path, 0755) < 0)
		return -1;
	if (w->kind == LWT_WEBDAV_APACHE && write_passwords(w) < 0)
		return -1;
	w->uid = geteuid();
	w->gid = getegid();
	if (w->kind == LWT_WEBDAV_APACHE && geteuid() == 0) {
		struct passwd *pw = getpwnam(APACHE_USER);

		if (!pw)
			return -1;
		w->uid = pw->pw_uid;
		w->gid = pw->pw_gid;
		snprintf(path, sizeof(path), "%s/run", w->dir);
		if (chown(w->root, w->uid, w->gid) < 0 || chown(path, w->uid, w->gid) < 0)
			return -1;
	}
	return 0;
}

static pid_t spawn(const struct lwt_webdav *w)
{
	char conf[128], log[128], addr[64], prefix[80], rconf[128];
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/server.conf", w->dir);
	snprintf(log, sizeof(log), "%s/error.log", w->dir);
	snprintf(prefix, sizeof(prefix), "%s/", w->dir);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", w->port);
	snprintf(rconf, sizeof(rconf), "%s/rclone.conf", w->dir);
	pid = fork();
	if (pid != 0)
		return pid;
	/* the server must not outlive a test that crashed */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	{
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	}
	closefrom(3);
	switch (w->kind) {
	case LWT_WEBDAV_APACHE:
		execl(APACHE, "apache2", "-f", conf, "-DFOREGROUND", (char *)NULL);
		break;
	case LWT_WEBDAV_NGINX:
		execl(NGINX, "nginx", "-p", prefix, "-c", conf, "-e", log, "-g",
		      "daemon off; master_process on;", (char *)NULL);
		break;
	case LWT_WEBDAV_RCLONE:
		/* no configuration of the user's; listings read the disk each
		 * time, so that what a test plants there is seen at once,
		 * unless the test asked for rclone's own cache */
		setenv("RCLONE_CONFIG", rconf, 1);
		execl(RCLONE, "rclone", "serve", "webdav", w->root, "--addr", addr,
		      "--dir-cache-time", keep_listings ? "5m" : "0s", "--log-level", "ERROR",
		      (char *)NULL);
		break;
	}
	_exit(127);
}

static int wait_ready(const struct lwt_webdav *w)
{
	for (int i = 0; i < 1000; i++) {
		int status;

		if (waitpid(w->pid, &status, WNOHANG) == w->pid)
			return -1;
		if (lwt_port_answers(w->port))
			return 0;
		sleep_ms(10);
	}
	return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

struct lwt_webdav *lwt_webdav_start(enum lwt_webdav_kind kind)
{
	struct lwt_webdav *w = calloc(1, sizeof(*w));
	char cmd[200];

	if (!w)
		return NULL;
	w->kind = kind;
	/* traffic stays on loopback, whatever the environment says */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	if (prepare(w) < 0) {
		fprintf(stderr, "lwt_webdav: cannot prepare %s: %s\n", w->dir, strerror(errno));
		lwt_webdav_stop(w);
		return NULL;
	}
	/* a port picked here may be taken by someone else before the server
	 * binds it: try again with another */
	for (int attempt = 0; attempt < 5; attempt++) {
		w->port = lwt_free_port();
		if (write_config(w) < 0)
			break;
		w->pid = spawn(w);
		if (w->pid > 0 && wait_ready(w) == 0)
			return w;
		if (w->pid > 0) {
			kill(w->pid, SIGKILL);
			waitpid(w->pid, NULL, 0);
		}
		w->pid = 0;
	}
	fprintf(stderr, "lwt_webdav: %s did not start\n", lwt_webdav_name(kind));
	snprintf(cmd, sizeof(cmd), "tail -5 %s/error.log >&2", w->dir);
	(void)!system(cmd);
	lwt_webdav_stop(w);
	return NULL;
}

void lwt_webdav_signal(const struct lwt_webdav *w, int sig)
{
	lwt_master_signal(w->pid, sig);
}

void lwt_webdav_stop(struct lwt_webdav *w)
{
	if (!w)
		return;
	if (w->pid > 0)
		lwt_master_stop(w->pid);
	if (w->dir[0] && !getenv("LWT_KEEP"))
		nftw(w->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(w);
}

int lwt_webdav_port(const struct lwt_webdav *w)
{
	return w->port;
}

const char *lwt_webdav_url(const struct lwt_webdav *w, const char *path)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "dav:http://127.0.0.1:%d%s", w->port, path);
	return buf;
}

const char *lwt_webdav_root(const struct lwt_webdav *w)
{
	return w->root;
}

static uid_t own_uid;
static gid_t own_gid;

static int own_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return lchown(path, own_uid, own_gid);
}

void lwt_webdav_own(const struct lwt_webdav *w, const char *path)
{
	if (w->uid == geteuid())
		return;
	own_uid = w->uid;
	own_gid = w->gid;
	nftw(path, own_entry, 16, FTW_PHYS);
}

long lwt_webdav_log_count(const struct lwt_webdav *w, const char *needle)
{
	char path[160], line[4096];
	long n = 0;
	FILE *f;

	if (w->kind == LWT_WEBDAV_RCLONE)
		return -1;
	snprintf(path, sizeof(path), "%s/access.log", w->dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}
