-- spdlab.lua: a Wireshark/tshark dissector for the SPD profile of spdlab
-- (reference/SPEC.md) in the APDU traces spdlab writes (rigs/trace): pcapng,
-- raw IPv4, UDP port 4729, GSMTAP version 2, type 4 (SIM).
--
--   tshark -X lua_script:rigs/trace/wireshark/spdlab.lua -r trace.pcapng
--   tshark -X lua_script:rigs/trace/wireshark/spdlab.lua -r trace.pcapng -V -Y spdlab.command
--   wireshark -X lua_script:rigs/trace/wireshark/spdlab.lua trace.pcapng
--   (or copy it to ~/.local/lib/wireshark/plugins/)
--
-- It takes UDP port 4729 from Wireshark's GSMTAP dissector and shows:
--   * every command of SPEC.md section 4 by name (CLA INS P1 P2 -> name), PAY's
--     kind and mode, GET DATA's object, GET DATA list's tags;
--   * the status word with its meaning in SPEC.md section 1.1;
--   * the data fields and responses as BER-TLV trees with the profile's tag names;
--   * ATR records (GSMTAP SIM sub-type 1) as an ATR: TS, T0, the interface bytes,
--     the historical bytes and TCK;
--   * command and response of one exchange in one record, split where spdlab's
--     "spdlab command-length=N" packet comment says (else by the APDU's Lc);
--     a GET RESPONSE links back to the exchange whose 61xx it continues.
-- spdlab's packet comments (command-length, error, op, case) are shown as
-- fields too; spdlab.case is the conformance case that sent the record
-- (filter a certify trace with spdlab.case == "TC-PAY-001").

local spd = Proto("spdlab", "spdlab SPD profile")

local f = spd.fields
f.gsmtap_version = ProtoField.uint8("spdlab.gsmtap.version", "GSMTAP version")
f.gsmtap_type = ProtoField.uint8("spdlab.gsmtap.type", "GSMTAP type")
f.gsmtap_subtype = ProtoField.uint8("spdlab.gsmtap.sim_subtype", "GSMTAP SIM sub-type", base.DEC,
  { [0] = "APDU", [1] = "ATR", [2] = "PPS request", [3] = "PPS response", [4] = "TPDU header",
    [5] = "TPDU command", [6] = "TPDU response", [7] = "TPDU status word" })
f.command = ProtoField.string("spdlab.command", "Command")
f.cla = ProtoField.uint8("spdlab.cla", "CLA", base.HEX)
f.ins = ProtoField.uint8("spdlab.ins", "INS", base.HEX)
f.p1 = ProtoField.uint8("spdlab.p1", "P1", base.HEX)
f.p2 = ProtoField.uint8("spdlab.p2", "P2", base.HEX)
f.lc = ProtoField.uint32("spdlab.lc", "Lc")
f.le = ProtoField.uint32("spdlab.le", "Le")
f.data = ProtoField.bytes("spdlab.data", "Command data")
f.rdata = ProtoField.bytes("spdlab.response_data", "Response data")
f.sw = ProtoField.uint16("spdlab.sw", "Status word", base.HEX)
f.sw_meaning = ProtoField.string("spdlab.sw.meaning", "Status meaning")
f.tag = ProtoField.string("spdlab.tlv.tag", "Tag")
f.tlv_name = ProtoField.string("spdlab.tlv.name", "Object")
f.tlv_len = ProtoField.uint32("spdlab.tlv.length", "Length")
f.tlv_value = ProtoField.bytes("spdlab.tlv.value", "Value")
f.continues = ProtoField.framenum("spdlab.continues", "Continues the response of", base.NONE, frametype.REQUEST)
f.continued = ProtoField.framenum("spdlab.continued_in", "Response continued in", base.NONE, frametype.RESPONSE)
f.comment = ProtoField.string("spdlab.comment", "spdlab comment")
f.error = ProtoField.string("spdlab.error", "Exchange failed")
f.op = ProtoField.string("spdlab.op", "Operation")
f.case = ProtoField.string("spdlab.case", "Conformance case")
f.atr = ProtoField.bytes("spdlab.atr", "ATR")
f.atr_ts = ProtoField.uint8("spdlab.atr.ts", "TS", base.HEX, { [0x3B] = "direct convention", [0x3F] = "inverse convention" })
f.atr_t0 = ProtoField.uint8("spdlab.atr.t0", "T0", base.HEX)
f.atr_td = ProtoField.string("spdlab.atr.interface", "Interface bytes")
f.atr_hist = ProtoField.bytes("spdlab.atr.historical", "Historical bytes")
f.atr_hist_text = ProtoField.string("spdlab.atr.historical_text", "Historical bytes as text")
f.atr_tck = ProtoField.uint8("spdlab.atr.tck", "TCK", base.HEX)

local ef_comment = nil
for _, name in ipairs({ "frame.comment", "pkt_comment" }) do
  local ok, fld = pcall(Field.new, name)
  if ok and fld then ef_comment = fld break end
end

-- Commands of SPEC.md section 4: key "CLA INS" or "CLA INS P1" / "CLA INS P1 P2".
local commands = {
  ["00 A4"] = "SELECT",
  ["00 C0"] = "GET RESPONSE",
  ["00 CA"] = "GET DATA",
  ["00 CB"] = "GET DATA list",
  ["00 84"] = "GET CHALLENGE",
  ["00 88"] = "INTERNAL AUTHENTICATE",
  ["00 20 00 80"] = "VERIFY PIN",
  ["00 20 00 81"] = "VERIFY biometric",
  ["00 24"] = "CHANGE REFERENCE DATA",
  ["00 2C 00"] = "RESET RETRY COUNTER (PUK)",
  ["00 2C 01"] = "RESET RETRY COUNTER (host)",
  ["80 50"] = "INITIALISE",
  ["80 52"] = "PERSONALISE",
  ["80 54"] = "ACTIVATE",
  ["80 60"] = "PAY",
  ["80 62"] = "READ PENDING",
  ["80 64"] = "ACKNOWLEDGE",
  ["80 66"] = "UPDATE PARAMETERS",
  ["80 68"] = "GENERATE MEDIUM",
  ["80 6A"] = "GENERATE TOKEN",
  ["80 6C 00"] = "TRANSFER (out)",
  ["80 6C 01"] = "TRANSFER (show)",
  ["80 6E"] = "TRANSFER IN",
  ["80 70"] = "RECLAIM",
  ["80 72 00"] = "PARSE MEDIUM",
  ["80 72 01"] = "PARSE MEDIUM (merchant code)",
  ["80 74"] = "STORE MEDIUM",
  ["80 78"] = "PRESENT CODE",
  ["80 7C"] = "EXCHANGE",
  ["80 76 00"] = "LIST MEDIA",
  ["80 76 01"] = "SHOW MEDIUM",
  ["80 5E"] = "TEST ERASE",
}

local function command_name(cla, ins, p1, p2)
  local k2 = string.format("%02X %02X", cla, ins)
  local k3 = string.format("%s %02X", k2, p1)
  local k4 = string.format("%s %02X", k3, p2)
  return commands[k4] or commands[k3] or commands[k2]
end

local pay_kinds = { [1] = "balance", [2] = "account", [3] = "use" }
local pay_modes = { [0] = "online", [1] = "offline" }

-- Status words of SPEC.md section 1.1.
local status = {
  [0x9000] = "done",
  [0x6581] = "persistent memory failure",
  [0x6700] = "wrong length",
  [0x6982] = "cardholder not verified; or issuer or host signature does not verify",
  [0x6983] = "PIN, PUK or biometric blocked",
  [0x6984] = "replayed update counter; transfer already imported or reclaimed; host assertion or exchange rate for another ATC",
  [0x6985] = "not selected; not allowed in this state; conditions not satisfied",
  [0x6A80] = "incorrect data field",
  [0x6A82] = "SELECT of an unknown AID",
  [0x6A83] = "record, transfer serial or stored medium not found",
  [0x6A84] = "ledger, token table, transfer table, import list or media store full",
  [0x6A86] = "incorrect P1/P2",
  [0x6A88] = "GET DATA of an unknown tag (or DF11 in a GET DATA list); no enrolled biometric template",
  [0x6D00] = "INS not supported",
  [0x6E00] = "CLA not supported",
}

local function sw_meaning(sw)
  if status[sw] then return status[sw] end
  local hi, lo = math.floor(sw / 256), sw % 256
  if hi == 0x61 then return string.format("%d more response bytes: send GET RESPONSE", lo == 0 and 256 or lo) end
  if hi == 0x63 and math.floor(lo / 16) == 0xC then return string.format("verification failed, %d tries left", lo % 16) end
  if hi == 0x6C then return string.format("wrong Le: resend with Le %d", lo) end
  return "not a status word of the SPD profile"
end

-- BER-TLV tags of the profile (SPEC.md sections 4, 7 and 8).
local tags = {
  [0x4F] = "AID", [0x5C] = "tag list", [0x61] = "service information template", [0x6F] = "FCI", [0x84] = "AID (FCI)",
  [0x85] = "payload format indicator", [0x9A] = "time", [0x5F24] = "expiry", [0x5F2A] = "currency",
  [0x9F02] = "amount", [0x9F36] = "ATC", [0x9F37] = "payment nonce", [0x9F45] = "device signature",
  [0xE1] = "pending record", [0xE2] = "merchant order template", [0xE3] = "stored media list",
  [0xE4] = "stored medium", [0xE5] = "payment code", [0xE6] = "exchange result",
  [0xDF01] = "medium kind", [0xDF02] = "device ID", [0xDF03] = "account token", [0xDF04] = "balance",
  [0xDF05] = "pending total", [0xDF06] = "uses", [0xDF07] = "payee nonce / order reference",
  [0xDF08] = "payer / counterpart", [0xDF09] = "payee", [0xDF0A] = "transfer serial",
  [0xDF0B] = "token controls", [0xDF0C] = "max transactions", [0xDF0D] = "max amount",
  [0xDF0E] = "channel", [0xDF0F] = "result", [0xDF10] = "reason", [0xDF11] = "device certificate",
  [0xDF20] = "life-cycle state", [0xDF22] = "ledger record count", [0xDF23] = "PIN tries left",
  [0xDF24] = "device public key", [0xDF26] = "location (region)", [0xDF28] = "record kind",
  [0xDF29] = "record mode", [0xDF2A] = "designated account", [0xDF2B] = "settled ATCs",
  [0xDF2C] = "update counter", [0xDF2D] = "top-up", [0xDF2E] = "uses added", [0xDF2F] = "erase counter",
  [0xDF30] = "old PIN", [0xDF31] = "PIN", [0xDF32] = "PUK", [0xDF40] = "CA public key",
  [0xDF42] = "host public key", [0xDF50] = "offline risk limits", [0xDF51] = "max payment",
  [0xDF52] = "max offline pending", [0xDF53] = "max offline count", [0xDF54] = "max seconds since sync",
  [0xDF57] = "PIN try limit", [0xDF58] = "biometric template", [0xDF59] = "biometric threshold",
  [0xDF5A] = "membership tier", [0xDF5B] = "tier discounts", [0xDF5C] = "allowed regions",
  [0xDF5D] = "region adjustments", [0xDF5E] = "required tier", [0xDF5F] = "test sample",
  [0xDF60] = "medium envelope", [0xDF61] = "closed transfer serials", [0xDF62] = "last sync time",
  [0xDF63] = "merchant order code", [0xDF64] = "merchant name", [0xDF65] = "merchant city",
  [0xDF66] = "point of initiation", [0xDF70] = "medium label", [0xDF71] = "medium format",
  [0xDF72] = "medium content", [0xDF73] = "medium size", [0xDF74] = "host checks",
  [0xDF75] = "host check threshold", [0xDF76] = "host assertion", [0xDF77] = "exchange rate",
  [0xDF78] = "exchange kind", [0xDF79] = "currency bought", [0xDF7A] = "rate numerator",
  [0xDF7B] = "rate denominator", [0xDF7C] = "exchange target",
}

local gd_objects = tags -- GET DATA names its object by P1 P2

-- tlv_tree adds the BER-TLV objects of tvb[off, off+len) under tree; it
-- returns false when the bytes are not BER-TLV (then nothing is added).
local function parse_tlv(tvb, off, stop, depth, out)
  while off < stop do
    local start = off
    local b = tvb(off, 1):uint()
    local tag = b
    off = off + 1
    if b % 32 == 31 then
      repeat
        if off >= stop then return false end
        local nb = tvb(off, 1):uint()
        tag = tag * 256 + nb
        off = off + 1
      until nb < 128 or off - start > 3
    end
    if off >= stop then return false end
    local l = tvb(off, 1):uint()
    off = off + 1
    if l == 0x81 then
      if off >= stop then return false end
      l = tvb(off, 1):uint(); off = off + 1
    elseif l == 0x82 then
      if off + 1 >= stop then return false end
      l = tvb(off, 2):uint(); off = off + 2
    elseif l > 0x82 then
      return false
    end
    if off + l > stop then return false end
    local obj = { start = start, tag = tag, voff = off, len = l, constructed = math.floor(b / 32) % 2 == 1, children = nil }
    if obj.constructed and l > 0 and depth < 8 then
      local kids = {}
      if parse_tlv(tvb, off, off + l, depth + 1, kids) then obj.children = kids end
    end
    table.insert(out, obj)
    off = off + l
  end
  return true
end

local function tag_hex(tag)
  if tag > 0xFFFF then return string.format("%06X", tag) end
  if tag > 0xFF then return string.format("%04X", tag) end
  return string.format("%02X", tag)
end

local function add_tlv(tree, tvb, objs)
  for _, o in ipairs(objs) do
    local name = tags[o.tag] or "unknown tag"
    local t = tree:add(spd, tvb(o.start, o.voff - o.start + o.len), string.format("%s %s (%d bytes)", tag_hex(o.tag), name, o.len))
    t:add(f.tag, tvb(o.start, o.voff - o.start - 1), tag_hex(o.tag))
    t:add(f.tlv_name, tvb(o.start, o.voff - o.start), name)
    if o.children then
      add_tlv(t, tvb, o.children)
    elseif o.len > 0 then
      t:add(f.tlv_value, tvb(o.voff, o.len))
    end
  end
end

local function show_data(tree, field, tvb, off, len, label)
  if len <= 0 then return end
  local d = tree:add(field, tvb(off, len))
  local objs = {}
  if parse_tlv(tvb, off, off + len, 0, objs) and #objs > 0 then
    add_tlv(d, tvb, objs)
  else
    d:append_text(" (not BER-TLV)")
  end
end

-- comments returns spdlab's packet comments of this frame.
local function comments()
  local out = {}
  if not ef_comment then return out end
  for _, fi in ipairs({ ef_comment() }) do
    local s = tostring(fi.value or fi)
    table.insert(out, s)
  end
  return out
end

local function dissect_atr(tvb, pinfo, tree)
  local n = tvb:len()
  local t = tree:add(f.atr, tvb(0, n))
  if n < 2 then return end
  t:add(f.atr_ts, tvb(0, 1))
  local t0 = tvb(1, 1):uint()
  local k = t0 % 16
  t:add(f.atr_t0, tvb(1, 1)):append_text(string.format(" (%d historical bytes)", k))
  local off, y, i = 2, math.floor(t0 / 16), 1
  local protocols, offered, global15 = {}, {}, false
  local tck_needed = false
  while y ~= 0 and off < n do
    local names = { "TA", "TB", "TC", "TD" }
    local td = nil
    for bit = 0, 3 do
      if math.floor(y / (2 ^ bit)) % 2 == 1 and off < n then
        local v = tvb(off, 1):uint()
        t:add(f.atr_td, tvb(off, 1), string.format("%s%d = %02X", names[bit + 1], i, v))
        if bit == 3 then td = v end
        off = off + 1
      end
    end
    if td == nil then break end
    -- Each protocol offered is named once (TD1 T=1 and TD2 T=1 offer T=1,
    -- the second introducing its specific bytes); T=15 introduces global
    -- interface bytes, not a protocol (ISO/IEC 7816-3 8.2.3).
    local proto = td % 16
    if proto == 15 then
      global15 = true
    elseif not offered[proto] then
      offered[proto] = true
      table.insert(protocols, "T=" .. proto)
    end
    if proto ~= 0 then tck_needed = true end
    y = math.floor(td / 16)
    i = i + 1
  end
  if off + k <= n and k > 0 then
    t:add(f.atr_hist, tvb(off, k))
    local s = tvb(off, k):string()
    if s:match("^[%g ]*$") then t:add(f.atr_hist_text, tvb(off, k), s) end
    off = off + k
  end
  if tck_needed and off < n then t:add(f.atr_tck, tvb(off, 1)) end
  if #protocols == 0 then table.insert(protocols, "T=0") end
  if global15 then table.insert(protocols, "T=15 global interface bytes") end
  local p = table.concat(protocols, ", ")
  pinfo.cols.info:set(string.format("ATR %s (%s)", tostring(tvb(0, n):bytes()), p))
end

-- Per-capture state: the last exchange answered 61xx, for GET RESPONSE.
local pending_61 = nil
local continues = {}   -- frame of a GET RESPONSE -> frame it continues
local continued = {}   -- frame answered 61xx -> the GET RESPONSE frame

function spd.init()
  pending_61 = nil
  continues, continued = {}, {}
end

local function dissect_apdu(tvb, pinfo, tree, cmdlen)
  local n = tvb:len()
  if n < 4 then return end
  local cla, ins, p1, p2 = tvb(0, 1):uint(), tvb(1, 1):uint(), tvb(2, 1):uint(), tvb(3, 1):uint()
  local name = command_name(cla, ins, p1, p2) or string.format("unknown command %02X %02X", cla, ins)
  local detail = ""
  if name == "PAY" then
    detail = string.format(" (%s, %s)", pay_kinds[p1] or string.format("kind %02X", p1), pay_modes[p2] or string.format("mode %02X", p2))
  elseif name == "GET DATA" then
    local tag = p1 == 0 and p2 or p1 * 256 + p2
    detail = string.format(" %s (%s)", tag_hex(tag), gd_objects[tag] or "unknown object")
  elseif name == "GET DATA list" and n >= 7 and tvb(4, 1):uint() > 2 and tvb(5, 1):uint() == 0x5C then
    -- 00 CB 3F FF Lc 5C len tags...: name each tag of the list.
    local len = tvb(6, 1):uint()
    local names, off, stop = {}, 7, math.min(7 + len, n)
    while off < stop do
      local tag = tvb(off, 1):uint()
      off = off + 1
      if tag % 32 == 31 then
        repeat
          if off >= stop then break end
          local nb = tvb(off, 1):uint()
          tag = tag * 256 + nb
          off = off + 1
        until nb < 128
      end
      table.insert(names, tag_hex(tag))
    end
    detail = " " .. table.concat(names, " ")
  elseif name == "READ PENDING" then
    detail = string.format(" #%d", p1 * 256 + p2)
  end
  -- Where the command ends: spdlab's comment, else the APDU's Lc.
  if not cmdlen then
    cmdlen = 4
    if n >= 5 then
      local lc = tvb(4, 1):uint()
      if n - 2 >= 5 + lc and lc > 0 and n - 2 - (5 + lc) >= 0 then cmdlen = 5 + lc else cmdlen = 5 end
    end
  end
  if cmdlen > n then cmdlen = n end
  local c = tree:add(spd, tvb(0, cmdlen), "Command: " .. name .. detail)
  c:add(f.command, tvb(0, 4), name)
  c:add(f.cla, tvb(0, 1)); c:add(f.ins, tvb(1, 1)); c:add(f.p1, tvb(2, 1)); c:add(f.p2, tvb(3, 1))
  -- ISO 7816-4 body: short or extended Lc / Le.
  local body = cmdlen - 4
  if body == 1 then
    c:add(f.le, tvb(4, 1))
  elseif body > 1 then
    local b5 = tvb(4, 1):uint()
    if b5 ~= 0 then
      c:add(f.lc, tvb(4, 1))
      show_data(c, f.data, tvb, 5, math.min(b5, cmdlen - 5))
      if body == 1 + b5 + 1 then c:add(f.le, tvb(5 + b5, 1)) end
    elseif body >= 3 then
      local lc = tvb(5, 2):uint()
      if body == 3 then
        c:add(f.le, tvb(5, 2))
      else
        c:add(f.lc, tvb(4, 3))
        show_data(c, f.data, tvb, 7, math.min(lc, cmdlen - 7))
      end
    end
  end
  local info = name .. detail
  local rlen = n - cmdlen
  if rlen >= 2 then
    local sw = tvb(n - 2, 2):uint()
    local meaning = sw_meaning(sw)
    local r = tree:add(spd, tvb(cmdlen, rlen), string.format("Response: %04X %s", sw, meaning))
    show_data(r, f.rdata, tvb, cmdlen, rlen - 2)
    r:add(f.sw, tvb(n - 2, 2))
    r:add(f.sw_meaning, tvb(n - 2, 2), meaning)
    info = string.format("%s -> %04X %s", info, sw, meaning)
    -- Link GET RESPONSE to the exchange it continues.
    if not pinfo.visited then
      if name == "GET RESPONSE" and pending_61 then
        continues[pinfo.number] = pending_61
        continued[pending_61] = pinfo.number
      end
      if math.floor(sw / 256) == 0x61 then pending_61 = pinfo.number else pending_61 = nil end
    end
    if continues[pinfo.number] then r:add(f.continues, continues[pinfo.number]) end
    if continued[pinfo.number] then r:add(f.continued, continued[pinfo.number]) end
  elseif rlen > 0 then
    tree:add(spd, tvb(cmdlen, rlen), "Response: truncated")
  end
  pinfo.cols.info:set(info)
end

local gsmtap_port = 4729

function spd.dissector(tvb, pinfo, tree)
  if tvb:len() < 16 then return 0 end
  local version, hlen, typ = tvb(0, 1):uint(), tvb(1, 1):uint() * 4, tvb(2, 1):uint()
  if version ~= 2 or typ ~= 4 or hlen < 16 or hlen > tvb:len() then return 0 end
  pinfo.cols.protocol:set("SPD")
  local sub = tvb(12, 1):uint()
  local root = tree:add(spd, tvb(), "spdlab SPD profile")
  local g = root:add(spd, tvb(0, hlen), "GSMTAP SIM record")
  g:add(f.gsmtap_version, tvb(0, 1)); g:add(f.gsmtap_type, tvb(2, 1)); g:add(f.gsmtap_subtype, tvb(12, 1))
  local cmdlen = nil
  local case_id = nil
  for _, c in ipairs(comments()) do
    local v = c:match("^spdlab command%-length=(%d+)")
    if v then cmdlen = tonumber(v) end
    local e = c:match("^spdlab error=(.*)")
    if e then root:add(f.error, e) end
    local op = c:match("^spdlab op=(.*)")
    if op then root:add(f.op, op) end
    local id = c:match("^spdlab case=(.*)")
    if id then root:add(f.case, id); case_id = id end
    if c:match("^spdlab ") then root:add(f.comment, c) end
  end
  local payload = tvb(hlen):tvb()
  if sub == 1 then
    dissect_atr(payload, pinfo, root)
  elseif sub == 0 then
    dissect_apdu(payload, pinfo, root, cmdlen)
  end
  -- The case that sent the record leads the Info column: a run's trace
  -- reads case by case, and "spdlab.case == ..." selects one.
  if case_id then
    root:append_text(", case " .. case_id)
    pinfo.cols.info:prepend("[" .. case_id .. "] ")
  end
  return tvb:len()
end

DissectorTable.get("udp.port"):add(gsmtap_port, spd)
