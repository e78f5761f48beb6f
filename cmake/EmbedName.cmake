# The C++ name of an embedded file, for EmbedLua.cmake and EmbedFiles.cmake:
#
#   primary_embed_name(<file name> <out var>)
#
# "k" and the words of the name (split at every run of characters other than
# letters and digits), each capitalised: license_of gives kLicenseOf,
# style.css gives kStyleCss.
function(primary_embed_name text out)
  string(REGEX REPLACE "[^A-Za-z0-9]+" ";" words "${text}")
  set(name "k")
  foreach(w IN LISTS words)
    string(SUBSTRING "${w}" 0 1 first)
    string(SUBSTRING "${w}" 1 -1 rest)
    string(TOUPPER "${first}" first)
    string(APPEND name "${first}${rest}")
  endforeach()
  set(${out} "${name}" PARENT_SCOPE)
endfunction()
