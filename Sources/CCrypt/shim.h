// The system's libxcrypt (Debian: libcrypt-dev), reached through a systemLibrary target of our own:
// crypt_rn for every crypt(3) scheme it knows (yescrypt, bcrypt, sha512crypt, md5crypt, …), for
// auth_basic_user_file. No logic here.
#ifndef LB_CCRYPT_SHIM_H
#define LB_CCRYPT_SHIM_H
#include <crypt.h>
#endif
