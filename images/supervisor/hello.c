/* Dynamically linked on purpose: if this runs, the image's loader and libc are whole. */
#include <stdio.h>

int main(void)
{
    puts("hello");
    return 0;
}
