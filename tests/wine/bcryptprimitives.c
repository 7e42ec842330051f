/* bcryptprimitives.dll for Wine 8 (Debian bookworm's), which lacks it: Rust's std (1.78 and
 * later) imports ProcessPrng from it for HashMap keys, so no Rust program starts without it.
 * Windows itself has this DLL: this stub exists only so that CI can run the examples under
 * Wine (.ci/run builds it with mingw-w64 next to the .exe files). It forwards to bcrypt.dll's
 * system RNG, which Wine has, so the bytes are as random as Wine's. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
