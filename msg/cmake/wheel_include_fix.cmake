# Included by msg/CMakeLists.txt and vendor/tf2_msgs/CMakeLists.txt after rosidl_generate_interfaces.
# --- Work around stale include paths in the PyPI ROS 2 wheels' CMake exports -------------------
# The *__rosidl_generator_py imported targets of the wheels carry the wheel build machine's
# Python/NumPy include directories (e.g. /opt/python/cp311-cp311/include/python3.11), which do
# not exist here, and CMake refuses to configure. Replace every non-existent include directory of
# an imported target with this machine's Python or NumPy include directory. On a normal ROS 2
# install all paths exist and this loop changes nothing. It runs after
# rosidl_generate_interfaces because that imports more targets (service_msgs, ...).
find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
get_property(_wm_imported DIRECTORY PROPERTY IMPORTED_TARGETS)
foreach(_tgt IN LISTS _wm_imported)
  get_target_property(_dirs ${_tgt} INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _dirs)
    continue()
  endif()
  set(_fixed "")
  set(_changed FALSE)
  foreach(_d IN LISTS _dirs)
    if(_d MATCHES "^\\$<" OR EXISTS "${_d}")
      list(APPEND _fixed "${_d}")
    elseif(_d MATCHES "numpy")
      list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
      set(_changed TRUE)
    elseif(_d MATCHES "[Pp]ython")
      list(APPEND _fixed ${Python3_INCLUDE_DIRS})
      set(_changed TRUE)
    else()
      set(_changed TRUE)  # drop a directory that does not exist and is not Python's
    endif()
  endforeach()
  if(_changed)
    list(REMOVE_DUPLICATES _fixed)
    set_target_properties(${_tgt} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endif()
endforeach()
# -----------------------------------------------------------------------------------------------
