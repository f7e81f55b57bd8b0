# The C ABI as a CMake package, installed inside the Python package so that a wheel is also a C++
# SDK:
#
#   <platlib>/fastpenalty/libfastpenalty.so.1                   (soname: the ABI version)
#   <platlib>/fastpenalty/include/fastpenalty/fastpenalty.h       (+ fastpenalty_experimental.h)
#   <platlib>/fastpenalty/cmake/fastpenaltyConfig.cmake          (+ ConfigVersion, Targets)
#
# `python -m fastpenalty --cmake-dir` prints the last directory. The build tree gets a config of
# its own in <build>/cmake, pointing at the build's library and the source tree's header, which is
# what an in-place development install (.so files symlinked into python/fastpenalty) finds.
include(CMakePackageConfigHelpers)

set(FASTPENALTY_INSTALL_PKGDIR fastpenalty)
set(FASTPENALTY_INSTALL_INCLUDEDIR ${FASTPENALTY_INSTALL_PKGDIR}/include)
set(FASTPENALTY_INSTALL_CMAKEDIR ${FASTPENALTY_INSTALL_PKGDIR}/cmake)

# Version of the package (scikit-build-core passes it; a plain CMake build reads pyproject.toml)
# and of the C ABI (from the header, the one source of truth).
if(DEFINED SKBUILD_PROJECT_VERSION)
  set(FASTPENALTY_VERSION "${SKBUILD_PROJECT_VERSION}")
else()
  file(STRINGS "${PROJECT_SOURCE_DIR}/pyproject.toml" _fp_version_line REGEX "^version *= *\"[^\"]+\"" LIMIT_COUNT 1)
  string(REGEX REPLACE "^version *= *\"([^\"]+)\".*" "\\1" FASTPENALTY_VERSION "${_fp_version_line}")
endif()
string(REGEX MATCH "^[0-9]+(\\.[0-9]+)*" FASTPENALTY_VERSION "${FASTPENALTY_VERSION}")
file(STRINGS "${PROJECT_SOURCE_DIR}/csrc/include/fastpenalty/fastpenalty.h" _fp_abi_line
     REGEX "^#define FP_ABI_VERSION [0-9]+")
string(REGEX REPLACE "^#define FP_ABI_VERSION ([0-9]+).*" "\\1" FASTPENALTY_ABI_VERSION "${_fp_abi_line}")
if(NOT FASTPENALTY_VERSION OR NOT FASTPENALTY_ABI_VERSION)
  message(FATAL_ERROR "fastpenalty: could not read the package version or FP_ABI_VERSION")
endif()
# The header's FP_VERSION_MAJOR/MINOR/PATCH must name the package version (pyproject.toml is the
# source; the header repeats it for compile-time checks), and the library reports it (fp_version()).
set(_fp_header_version "")
foreach(_part MAJOR MINOR PATCH)
  file(STRINGS "${PROJECT_SOURCE_DIR}/csrc/include/fastpenalty/fastpenalty.h" _fp_line
       REGEX "^#define FP_VERSION_${_part} [0-9]+")
  string(REGEX REPLACE "^#define FP_VERSION_${_part} ([0-9]+).*" "\\1" _fp_number "${_fp_line}")
  list(APPEND _fp_header_version "${_fp_number}")
endforeach()
string(REPLACE ";" "." _fp_header_version "${_fp_header_version}")
if(NOT _fp_header_version STREQUAL FASTPENALTY_VERSION)
  message(FATAL_ERROR "fastpenalty: fastpenalty.h says version ${_fp_header_version}, the package is "
                      "${FASTPENALTY_VERSION}: update FP_VERSION_MAJOR/MINOR/PATCH")
endif()
target_compile_definitions(fastpenalty PRIVATE FASTPENALTY_VERSION_STRING="${FASTPENALTY_VERSION}")
# The soname carries the ABI version (libfastpenalty.so.1). No namelink is installed: a wheel would
# turn it into a second copy of the library, and consumers link through the CMake targets.
set_target_properties(fastpenalty PROPERTIES SOVERSION ${FASTPENALTY_ABI_VERSION})

# Consumers that add this source tree with add_subdirectory() use the same name as installed ones.
add_library(fastpenalty::fastpenalty ALIAS fastpenalty)
target_include_directories(fastpenalty INTERFACE $<INSTALL_INTERFACE:${FASTPENALTY_INSTALL_INCLUDEDIR}>)

install(FILES "${PROJECT_SOURCE_DIR}/csrc/include/fastpenalty/fastpenalty.h"
              "${PROJECT_SOURCE_DIR}/csrc/include/fastpenalty/fastpenalty_experimental.h"
        DESTINATION ${FASTPENALTY_INSTALL_INCLUDEDIR}/fastpenalty)
# The library file itself is installed by the top level; this rule adds it to the export set.
install(TARGETS fastpenalty EXPORT fastpenaltyTargets
        LIBRARY DESTINATION ${FASTPENALTY_INSTALL_PKGDIR} NAMELINK_SKIP
        RUNTIME DESTINATION ${FASTPENALTY_INSTALL_PKGDIR}
        ARCHIVE DESTINATION ${FASTPENALTY_INSTALL_PKGDIR})
install(EXPORT fastpenaltyTargets NAMESPACE fastpenalty:: FILE fastpenaltyTargets.cmake
        DESTINATION ${FASTPENALTY_INSTALL_CMAKEDIR})

# The place for a C ABI over CUDA device pointers and streams: a shared library target named
# fastpenalty_cuda (its header under csrc/include/fastpenalty/) becomes fastpenalty::cuda, the
# `cuda` component of the package. Nothing builds such a target yet.
if(TARGET fastpenalty_cuda)
  add_library(fastpenalty::cuda ALIAS fastpenalty_cuda)
  target_include_directories(fastpenalty_cuda INTERFACE $<INSTALL_INTERFACE:${FASTPENALTY_INSTALL_INCLUDEDIR}>)
  install(TARGETS fastpenalty_cuda EXPORT fastpenaltyCudaTargets
          LIBRARY DESTINATION ${FASTPENALTY_INSTALL_PKGDIR}
          RUNTIME DESTINATION ${FASTPENALTY_INSTALL_PKGDIR})
  install(EXPORT fastpenaltyCudaTargets NAMESPACE fastpenalty:: FILE fastpenaltyCudaTargets.cmake
          DESTINATION ${FASTPENALTY_INSTALL_CMAKEDIR})
  export(EXPORT fastpenaltyCudaTargets NAMESPACE fastpenalty::
         FILE "${PROJECT_BINARY_DIR}/cmake/fastpenaltyCudaTargets.cmake")
endif()

write_basic_package_version_file("${PROJECT_BINARY_DIR}/cmake/fastpenaltyConfigVersion.cmake"
                                 VERSION ${FASTPENALTY_VERSION} COMPATIBILITY SameMajorVersion)

# Installed config: relocatable, found relative to its own directory.
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/fastpenaltyConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/cmake-install/fastpenaltyConfig.cmake"
                              INSTALL_DESTINATION ${FASTPENALTY_INSTALL_CMAKEDIR})
install(FILES "${PROJECT_BINARY_DIR}/cmake-install/fastpenaltyConfig.cmake"
              "${PROJECT_BINARY_DIR}/cmake/fastpenaltyConfigVersion.cmake"
        DESTINATION ${FASTPENALTY_INSTALL_CMAKEDIR})

# Build-tree config: the same template over the build's targets.
export(EXPORT fastpenaltyTargets NAMESPACE fastpenalty:: FILE "${PROJECT_BINARY_DIR}/cmake/fastpenaltyTargets.cmake")
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/fastpenaltyConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/cmake/fastpenaltyConfig.cmake"
                              INSTALL_DESTINATION "${PROJECT_BINARY_DIR}/cmake"
                              INSTALL_PREFIX "${PROJECT_BINARY_DIR}")
