/* Module placeholder until its first source lands; removed then. */
typedef int hvp_policy_empty_unit;
