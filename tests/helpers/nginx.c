/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nginx.h"

#define NGINX "/usr/sbin/nginx"
#define NSERVERS 4
#define BIG_BODY (100u << 20)

struct lwt_nginx {
	char dir[64];   /* prefix: configuration, logs, temporary files */
	char root[96];  /* what the servers store */
	char flags[96]; /* fault flags */
	char ca[96];
	int port[NSERVERS];
	pid_t pid;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

int lwt_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

bool lwt_port_answers(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static int run(const char *cmd)
{
	int r = system(cmd);

	return r == 0 ? 0 : -1;
}

/* What the dav server, plain, TLS or behind auth, does. */
static void dav_locations(FILE *f, const struct lwt_nginx *ng)
{
	fprintf(f,
		"    if (-f %s/fail500) { return 500; }\n"
		"    location / {\n"
		"      dav_methods PUT DELETE;\n"
		"      create_full_put_path on;\n"
		"      dav_access user:rw group:r all:r;\n"
		"      autoindex on;\n"
		"      autoindex_format json;\n"
		"    }\n",
		ng->flags);
}

static int write_config(const struct lwt_nginx *ng)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/nginx.conf", ng->dir);
	f = fopen(path, "w");
	if (!f)
		return -1;
	if (geteuid() == 0)
		fprintf(f, "user root;\n");
	fprintf(f,
		"worker_processes 1;\n"
		"pid %1$s/nginx.pid;\n"
		"error_log %1$s/error.log warn;\n"
		"events { worker_connections 1024; }\n"
		"http {\n"
		"  log_format lwt '$server_port $request_method $request_uri $status $body_bytes_sent';\n"
		"  access_log %1$s/access.log lwt;\n"
		"  client_body_temp_path %1$s/tmp/body;\n"
		"  proxy_temp_path %1$s/tmp/proxy;\n"
		"  fastcgi_temp_path %1$s/tmp/fastcgi;\n"
		"  uwsgi_temp_path %1$s/tmp/uwsgi;\n"
		"  scgi_temp_path %1$s/tmp/scgi;\n"
		"  default_type application/octet-stream;\n"
		"  proxy_http_version 1.1;\n"
		"  proxy_set_header Connection \"\";\n"
		"  upstream dav { server 127.0.0.1:%2$d; keepalive 16; }\n",
		ng->dir, ng->port[LWT_DAV]);

	/* dav, with the faults; PROPFIND is 405 everywhere, as on any nginx
	 * without dav-ext (the fault locations would answer it 200), so that
	 * dav: reads their JSON */
	fprintf(f, "  server {\n    listen 127.0.0.1:%d;\n    root %s;\n"
		"    if ($request_method = PROPFIND) { return 405; }\n",
		ng->port[LWT_DAV], ng->root);
	dav_locations(f, ng);
	fprintf(f,
		"    location /html502/ { return 502; }\n"
		"    location = /notjson/locks/ { default_type text/html;\n"
		"      return 200 '<html><body><form>Sign in</form></body></html>'; }\n"
		"    location = /truncated/locks/ { default_type application/json;\n"
		"      return 200 '[{\"name\":\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\",\"type\":\"fi'; }\n"
		"    location = /evil/locks/ { default_type application/json;\n"
		"      return 200 '[{\"name\":\"../x\",\"type\":\"file\"},{\"name\":\"a/b\",\"type\":\"file\"},"
		"{\"name\":\"..\",\"type\":\"directory\"},\"../../etc/passwd\","
		"{\"name\":\"../aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"},"
		"{\"name\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]'; }\n"
		"    location = /big/locks/ { root %1$s; default_type application/json;\n"
		"      rewrite ^ /big.json break; }\n"
		"    location = /bigchunked/locks/ { root %1$s; default_type application/json;\n"
		"      rewrite ^ /big.json break; sub_filter_types *; sub_filter 'x' 'y'; }\n"
		"  }\n",
		ng->dir);

	/* rest: restic's protocol in front of dav */
	fprintf(f,
		"  server {\n"
		"    listen 127.0.0.1:%d;\n"
		"    root %s;\n"
		"    if (-f %s/fail500) { return 500; }\n"
		"    location / {\n"
		"      autoindex on;\n"
		"      autoindex_format json; # name and size, as restic's v2\n"
		"      error_page 418 = @create;\n"
		"      error_page 419 = @delete;\n"
		"      error_page 420 = @init;\n"
		"      set $probe $request_method;\n"
		"      if (-f $request_filename) { set $probe \"${probe}-exists\"; }\n"
		"      if ($arg_create = true) { return 420; }\n"
		"      if ($probe = POST-exists) { return 403; }\n"
		"      if ($probe = POST) { return 418; }\n"
		"      if ($probe = DELETE) { return 200; } # missing: restic answers 200\n"
		"      if ($probe = DELETE-exists) { return 419; }\n"
		"    }\n"
		"    location @create { proxy_method PUT; proxy_pass http://dav; }\n"
		"    location @delete { proxy_pass http://dav; }\n"
		"    location @init { proxy_method PUT; proxy_pass_request_body off;\n"
		"      proxy_set_header Content-Length 0; proxy_set_header Connection \"\";\n"
		"      proxy_pass http://dav${uri}locks/.keep; }\n"
		"  }\n",
		ng->port[LWT_REST], ng->root, ng->flags);

	/* dav over TLS */
	fprintf(f,
		"  server {\n    listen 127.0.0.1:%d ssl;\n    root %s;\n"
		"    ssl_certificate %s/server.pem;\n"
		"    ssl_certificate_key %s/server.key;\n",
		ng->port[LWT_DAV_TLS], ng->root, ng->dir, ng->dir);
	dav_locations(f, ng);
	fprintf(f, "  }\n");

	/* dav behind basic auth */
	fprintf(f,
		"  server {\n    listen 127.0.0.1:%d;\n    root %s;\n"
		"    auth_basic lockwatch;\n"
		"    auth_basic_user_file %s/htpasswd;\n",
		ng->port[LWT_DAV_AUTH], ng->root, ng->dir);
	dav_locations(f, ng);
	fprintf(f, "  }\n}\n");
	return fclose(f) == 0 ? 0 : -1;
}

/* A CA and a server certificate for 127.0.0.1 signed by it. */
static int make_certs(struct lwt_nginx *ng)
{
	char cmd[2048];

	snprintf(ng->ca, sizeof(ng->ca), "%s/ca.pem", ng->dir);
	snprintf(cmd, sizeof(cmd),
		 "(cd %s && "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
		 "-nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=lwt-ca && "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
		 "printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf && "
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
		 "-CAcreateserial -out server.pem -days 2 -extfile ext.cnf) >/dev/null 2>&1",
		 ng->dir);
	return run(cmd);
}

static int write_file(const char *dir, const char *name, const char *text)
{
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	return fclose(f) == 0 ? 0 : -1;
}

static int prepare(struct lwt_nginx *ng)
{
	char path[160];
	int fd;

	snprintf(ng->dir, sizeof(ng->dir), "/tmp/lwt-nginx-XXXXXX");
	if (!mkdtemp(ng->dir))
		return -1;
	snprintf(ng->root, sizeof(ng->root), "%s/data", ng->dir);
	snprintf(ng->flags, sizeof(ng->flags), "%s/flags", ng->dir);
	snprintf(path, sizeof(path), "%s/tmp", ng->dir);
	if (mkdir(ng->root, 0755) < 0 || mkdir(ng->flags, 0755) < 0 ||
	    mkdir(path, 0755) < 0)
		return -1;
	/* sparse: 100 MB of nothing, cheap to make and to send */
	snprintf(path, sizeof(path), "%s/big.json", ng->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0 || ftruncate(fd, BIG_BODY) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	if (write_file(ng->dir, "htpasswd", LWT_AUTH_USER ":{PLAIN}" LWT_AUTH_PASSWORD "\n") < 0)
		return -1;
	return make_certs(ng);
}

static pid_t spawn(const struct lwt_nginx *ng)
{
	char conf[128], errlog[128], prefix[80];
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/nginx.conf", ng->dir);
	snprintf(errlog, sizeof(errlog), "%s/error.log", ng->dir);
	snprintf(prefix, sizeof(prefix), "%s/", ng->dir);
	pid = fork();
	if (pid != 0)
		return pid;
	/* nginx must not outlive a test that crashed */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	{
		int fd = open(errlog, O_WRONLY | O_APPEND | O_CREAT, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	}
	closefrom(3);
	execl(NGINX, "nginx", "-p", prefix, "-c", conf, "-e", errlog, "-g",
	      "daemon off; master_process on;", (char *)NULL);
	_exit(127);
}

static int wait_ready(const struct lwt_nginx *ng)
{
	for (int i = 0; i < 500; i++) {
		int status, up = 0;

		if (waitpid(ng->pid, &status, WNOHANG) == ng->pid)
			return -1;
		for (int s = 0; s < NSERVERS; s++)
			up += lwt_port_answers(ng->port[s]);
		if (up == NSERVERS)
			return 0;
		sleep_ms(10);
	}
	return -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void show_error_log(const struct lwt_nginx *ng)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "tail -5 %s/error.log >&2", ng->dir);
	(void)!system(cmd);
}

struct lwt_nginx *lwt_nginx_start(void)
{
	struct lwt_nginx *ng = calloc(1, sizeof(*ng));

	if (!ng)
		return NULL;
	/* traffic stays on loopback, whatever the environment says */
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	if (prepare(ng) < 0) {
		fprintf(stderr, "lwt_nginx: cannot prepare %s: %s\n", ng->dir, strerror(errno));
		lwt_nginx_stop(ng);
		return NULL;
	}
	/* a port picked here may be taken by someone else before nginx binds
	 * it: try again with others */
	for (int attempt = 0; attempt < 5; attempt++) {
		for (int s = 0; s < NSERVERS; s++)
			ng->port[s] = lwt_free_port();
		if (write_config(ng) < 0)
			break;
		ng->pid = spawn(ng);
		if (ng->pid > 0 && wait_ready(ng) == 0)
			return ng;
		if (ng->pid > 0) {
			kill(ng->pid, SIGKILL);
			waitpid(ng->pid, NULL, 0);
		}
		ng->pid = 0;
	}
	fprintf(stderr, "lwt_nginx: nginx did not start\n");
	show_error_log(ng);
	lwt_nginx_stop(ng);
	return NULL;
}

int lwt_children(pid_t master, pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)) && n < max) {
		char path[300], buf[512], *p;
		long ppid;
		FILE *f;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p + 2, "%*c %ld", &ppid) == 1 && ppid == master)
			out[n++] = (pid_t)atol(de->d_name);
	}
	if (d)
		closedir(d);
	return n;
}

void lwt_master_signal(pid_t master, int sig)
{
	pid_t c[64];
	int n = lwt_children(master, c, 64);

	kill(master, sig);
	for (int i = 0; i < n; i++)
		kill(c[i], sig);
}

void lwt_master_stop(pid_t master)
{
	pid_t c[64];
	int n = lwt_children(master, c, 64), status;
	bool gone = false;

	lwt_master_signal(master, SIGCONT);
	kill(master, SIGTERM);
	for (int i = 0; i < 500 && !gone; i++) {
		gone = waitpid(master, &status, WNOHANG) == master;
		if (!gone)
			sleep_ms(10);
	}
	if (!gone) {
		kill(master, SIGKILL);
		waitpid(master, &status, 0);
	}
	/* a child the master did not take with it */
	for (int i = 0; i < n; i++)
		kill(c[i], SIGKILL);
}

void lwt_nginx_signal(const struct lwt_nginx *ng, int sig)
{
	lwt_master_signal(ng->pid, sig);
}

void lwt_nginx_stop(struct lwt_nginx *ng)
{
	if (!ng)
		return;
	if (ng->pid > 0)
		lwt_master_stop(ng->pid);
	if (ng->dir[0] && !getenv("LWT_KEEP"))
		nftw(ng->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(ng);
}

int lwt_nginx_port(const struct lwt_nginx *ng, enum lwt_server s)
{
	return ng->port[s];
}

const char *lwt_nginx_url(const struct lwt_nginx *ng, enum lwt_server s,
			  const char *path)
{
	static char buf[512];

	snprintf(buf, sizeof(buf), "%s:%s://127.0.0.1:%d%s", s == LWT_REST ? "rest" : "dav",
		 s == LWT_DAV_TLS ? "https" : "http", ng->port[s], path);
	return buf;
}

const char *lwt_nginx_ca_file(const struct lwt_nginx *ng)
{
	return ng->ca;
}

const char *lwt_nginx_root(const struct lwt_nginx *ng)
{
	return ng->root;
}

void lwt_nginx_fault(const struct lwt_nginx *ng, const char *name, bool on)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s", ng->flags, name);
	if (on)
		write_file(ng->flags, name, "");
	else
		unlink(path);
}

static bool is_id(const char *s)
{
	size_t n = strspn(s, "0123456789abcdef");

	return n == 64 && s[n] == '\0';
}

int lwt_nginx_count_locks(const struct lwt_nginx *ng, const char *path)
{
	return lwt_count_locks_in(ng->root, path);
}

int lwt_count_locks_in(const char *root, const char *path)
{
	char dir[512];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s%slocks", root, path);
	d = opendir(dir);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += is_id(de->d_name);
	closedir(d);
	return n;
}

void lwt_nginx_explain_locks(const struct lwt_nginx *ng, const char *path)
{
	char dir[512], cmd[1024];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s%slocks", ng->root, path);
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		if (!is_id(de->d_name))
			continue;
		fprintf(stderr, "left behind: %s\n", de->d_name);
		snprintf(cmd, sizeof(cmd), "grep -n %.16s %s/access.log >&2", de->d_name, ng->dir);
		(void)!system(cmd);
	}
	if (d)
		closedir(d);
}

size_t lwt_nginx_log_count(const struct lwt_nginx *ng, const char *needle)
{
	char path[160], line[4096];
	size_t n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/access.log", ng->dir);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, needle) != NULL;
	fclose(f);
	return n;
}

/* The inodes of this process's sockets, to tell its connections from
 * nginx's own (the rest: server's proxy connects to the dav port too). */
static bool own_socket(unsigned long inode)
{
	char want[64], link[64], path[300];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	bool found = false;

	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	while (d && !found && (de = readdir(d))) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = '\0';
			found = strcmp(link, want) == 0;
		}
	}
	if (d)
		closedir(d);
	return found;
}

int lwt_tcp_connections(int port)
{
	FILE *f = fopen("/proc/net/tcp", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -1;
	(void)!fgets(line, sizeof(line), f); /* the header */
	while (fgets(line, sizeof(line), f)) {
		unsigned rport, state;
		unsigned long inode;

		if (sscanf(line, "%*d: %*x:%*x %*x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
			   &rport, &state, &inode) != 3)
			continue;
		/* Connections that live: 01 ESTABLISHED, 02 SYN_SENT.  One
		 * the server closed (08 CLOSE_WAIT, nginx ends a keep-alive
		 * connection after keepalive_requests) holds a descriptor
		 * until curl next looks at its cache, but no connection. */
		if (rport == (unsigned)port && (state == 0x01 || state == 0x02) &&
		    own_socket(inode))
			n++;
	}
	fclose(f);
	return n;
}
