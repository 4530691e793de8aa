-- wrk(1) script: the HTTP requests of lockwatch refreshes on a dav: server,
-- for the ceiling that lockwatch-bench's request rate is compared with.
--
--   wrk -t1 -c8 -d30s -s cmd/bench/wrk.lua http://127.0.0.1:PORT/wrk/
--
-- A refresh is a PUT of a new record to locks/<64 hex digits> and a DELETE
-- of the previous file; here each PUT is followed by the DELETE of a file
-- put 64 PUTs earlier (at most -c requests are in flight, so it is there).
-- The body has a record's size: 192 bytes, the record lockwatch-bench
-- writes on the machine measured (RECORD_BYTES overrides).  The headers are
-- those libcurl sends for lockwatch: Accept and Content-Type.

local lag = 64
local body, prefix
local puts, deletes = 0, 0

function init(args)
	local seed = tonumber(tostring({}):match("0x(%x+)"), 16) or os.time()

	math.randomseed(os.time() + seed)
	body = string.rep("r", tonumber(os.getenv("RECORD_BYTES") or "192"))
	prefix = ""
	for _ = 1, 6 do
		prefix = prefix .. string.format("%08x", math.random(0, 0x7fffffff))
	end
end

local function path(k)
	return wrk.path .. "locks/" .. prefix .. string.format("%016x", k)
end

function request()
	if puts < lag or deletes >= puts - lag then
		puts = puts + 1
		return wrk.format("PUT", path(puts), {
			["Accept"] = "*/*",
			["Content-Type"] = "application/octet-stream",
		}, body)
	end
	deletes = deletes + 1
	return wrk.format("DELETE", path(deletes), { ["Accept"] = "*/*" })
end
