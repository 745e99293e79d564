/* The FastCGI-path ceiling for benches/load.sh: the smallest useful responder,
 * C on Debian's libfcgi, answering every request with the same JSON as nene's
 * /health. 64 threads, so nginx's kept connections never queue behind each
 * other. Build: gcc -O2 -o responder responder.c -lfcgi -lpthread
 * Run: ./responder 127.0.0.1:PORT */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>

#define THREADS 64
static int listen_socket;

static void *serve(void *unused) {
    FCGX_Request request;
    FCGX_InitRequest(&request, listen_socket, 0);
    for (;;) {
        /* No accept mutex: accept(2) is thread-safe on Linux, and a lock
         * would be held while a thread waits on its kept connection. */
        if (FCGX_Accept_r(&request) < 0) break;
        FCGX_PutS("Status: 200 OK\r\nContent-Type: application/json\r\n"
                  "Content-Length: 15\r\n\r\n{\"status\":\"ok\"}", request.out);
        FCGX_Finish_r(&request);
    }
    return unused;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s HOST:PORT\n", argv[0]); return 2; }
    FCGX_Init();
    listen_socket = FCGX_OpenSocket(argv[1], 1024);
    if (listen_socket < 0) { perror("FCGX_OpenSocket"); return 1; }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&threads[i], NULL, serve, NULL);
    for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
    return 0;
}
