-- GET a random path from BENCH_PATHS (one per line), as a browser would send it.
-- Optional: BENCH_COOKIE (a logged-in session, kept up to date from the answers' Set-Cookie),
-- BENCH_IF_NONE_MATCH (a cached ETag).
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

  -- Keep the cookies the server sets, as a browser does: the session cookie changes when the
  -- session does (its CSRF token on the first form, its last-seen time once a minute). Sending
  -- the login's cookie for ever would make the server write a new one on every request.
  function response(status, answer_headers, body)
    local set = answer_headers["Set-Cookie"]
    if not set then
      return
    end
    local name, value = set:match("^%s*([^=;%s]+)=([^;]*)")
    if not name then
      return
    end
    local jar, found = {}, false
    for pair in headers["Cookie"]:gmatch("[^;]+") do
      local trimmed = (pair:gsub("^%s+", ""))
      if trimmed:match("^([^=]+)=") == name then
        jar[#jar + 1] = name .. "=" .. value
        found = true
      else
        jar[#jar + 1] = trimmed
      end
    end
    if not found then
      jar[#jar + 1] = name .. "=" .. value
    end
    headers["Cookie"] = table.concat(jar, "; ")
  end
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
