/* Module placeholder until its first source lands; removed then. */
typedef int hvp_patcher_empty_unit;
