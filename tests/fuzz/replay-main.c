/*
 * Replays every file of a corpus folder through a libFuzzer entry point, so the
 * fuzz targets run as plain tests under gcc (no libFuzzer needed).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
        struct dirent *de;
        unsigned n = 0;
        DIR *d;

        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
                return 2;
        }
        d = opendir(argv[1]);
        if (!d) {
                perror(argv[1]);
                return 1;
        }
        while ((de = readdir(d))) {
                char path[4096];
                uint8_t *buf;
                long size;
                FILE *f;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", argv[1], de->d_name);
                f = fopen(path, "rb");
                if (!f)
                        continue;
                fseek(f, 0, SEEK_END);
                size = ftell(f);
                rewind(f);
                buf = malloc(size > 0 ? (size_t)size : 1);
                if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) {
                        LLVMFuzzerTestOneInput(buf, (size_t)size);
                        n++;
                }
                free(buf);
                fclose(f);
        }
        closedir(d);
        printf("replayed %u inputs\n", n);
        /* An empty corpus is a defect: the test would check nothing. */
        return n > 0 ? 0 : 1;
}
