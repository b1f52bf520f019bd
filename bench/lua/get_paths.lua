-- GET a random path from BENCH_PATHS (one per line), as a browser would send it.
-- Optional: BENCH_COOKIE (a logged-in session), BENCH_IF_NONE_MATCH (a cached ETag).
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do
  paths[#paths + 1] = line
end
local headers = {
  ["Accept"] = "text/html,application/xhtml+xml,*/*;q=0.8",
  ["Accept-Encoding"] = "gzip",
  ["Accept-Language"] = "de-DE,de;q=0.9",
}
local cookie = os.getenv("BENCH_COOKIE")
if cookie and cookie ~= "" then
  headers["Cookie"] = cookie
end
local etag = os.getenv("BENCH_IF_NONE_MATCH")
if etag and etag ~= "" then
  headers["If-None-Match"] = etag
end

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  return wrk.format("GET", paths[math.random(#paths)], headers)
end
