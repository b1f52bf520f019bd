-- POST /api/v1/checks with a provider's API token and a random code (QR text or pass number).
-- BENCH_CODES: a file with one code per line; BENCH_TOKEN: the raw API token.
local codes = {}
for line in io.lines(os.getenv("BENCH_CODES")) do
  codes[#codes + 1] = line
end
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN"),
  ["Content-Type"] = "application/json",
  ["Accept"] = "application/json",
  ["Accept-Encoding"] = "gzip",
}

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local code = codes[math.random(#codes)]
  return wrk.format("POST", "/api/v1/checks", headers, '{"code": "' .. code .. '"}')
end
