# hvp_add_unit_test(NAME SOURCES... [LIBS ...]) builds tests/unit/NAME as a cmocka
# executable linked against the static library, and registers it with CTest
# under the "unit" label. Exit status 77 means skipped (tests/unit/prereq.h).
function(hvp_add_unit_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE hvpatch_static PkgConfig::CMOCKA ${T_LIBS})
  add_test(NAME ${name} COMMAND ${name} ${T_ARGS})
  # 77: a prerequisite is missing (tests/unit/prereq.h): CTest says "Skipped", not "Passed"
  set_tests_properties(${name} PROPERTIES LABELS "unit;${T_LABELS}" TIMEOUT 300 SKIP_RETURN_CODE 77)
endfunction()

# hvp_add_fuzz_target(NAME SOURCE CORPUS_DIR): with HVP_FUZZ (clang) a libFuzzer
# binary; always a replay executable that runs every corpus file through the
# target under the normal compiler, registered as a "fuzz" test.
function(hvp_add_fuzz_target name source corpus)
  add_executable(${name}-replay ${source} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay-main.c)
  target_link_libraries(${name}-replay PRIVATE hvpatch_static)
  add_test(NAME ${name}-replay COMMAND ${name}-replay ${corpus})
  set_tests_properties(${name}-replay PROPERTIES LABELS "fuzz" TIMEOUT 300)
  if(HVP_FUZZ)
    add_executable(${name} ${source})
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE hvpatch_static)
  endif()
endfunction()
