# FASTPENALTY_JAX from the environment, read again at every configure: `FASTPENALTY_JAX=1 pip
# install .` (see pyproject.toml) must not leave a cached ON behind for the next build in the same
# build directory, whose environment may lack jaxlib. A set variable shadows the cache entry.
if(NOT "$ENV{FASTPENALTY_JAX}" STREQUAL "")
  string(TOUPPER "$ENV{FASTPENALTY_JAX}" _fp_jax_env)
  if(_fp_jax_env MATCHES "^(1|ON|YES|TRUE|Y|T)$")
    set(FASTPENALTY_JAX ON)
  elseif(_fp_jax_env MATCHES "^(0|OFF|NO|FALSE|N|F)$")
    set(FASTPENALTY_JAX OFF)
  elseif(_fp_jax_env STREQUAL "AUTO")
    set(FASTPENALTY_JAX AUTO)
  else()
    message(FATAL_ERROR "fastpenalty: FASTPENALTY_JAX='$ENV{FASTPENALTY_JAX}' in the environment; use 1, 0 or AUTO")
  endif()
endif()
if(NOT FASTPENALTY_JAX MATCHES "^(AUTO|ON|OFF)$")
  message(FATAL_ERROR "fastpenalty: FASTPENALTY_JAX must be AUTO, ON or OFF, got '${FASTPENALTY_JAX}'")
endif()
