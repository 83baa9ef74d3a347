local BUDGET = @HASH_BUDGET_BYTES@
local function entry_fields() return {@FIELD_NAMES@}, {@FIELD_LIMITS@} end
