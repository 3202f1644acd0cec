#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdint.h>
#include <time.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static void* idle(void*a){ pause(); return 0;}
int main(){ pthread_t t; pthread_create(&t,0,idle,0);
 void*h=dlopen("./lib.so",RTLD_NOW); int(*lk)(uint64_t*)=dlsym(h,"lk"),(*ul)(uint64_t*)=dlsym(h,"ul"),(*lk2)(uint64_t*)=dlsym(h,"lk2"),(*ul2)(uint64_t*)=dlsym(h,"ul2");
 static uint64_t w __attribute__((aligned(64))); static pthread_mutex_t m=PTHREAD_MUTEX_INITIALIZER; int N=20000000;
 for(int r=0;r<3;r++){
 double a=now(); for(int i=0;i<N;i++){ if(lk(&w))return 1; if(ul(&w))return 1;} double b=now();
 for(int i=0;i<N;i++){ if(pthread_mutex_lock(&m))return 1; if(pthread_mutex_unlock(&m))return 1;} double c=now();
 for(int i=0;i<N;i++){ if(lk2(&w))return 1; if(ul2(&w))return 1;} double d=now();
 printf("cas-only %.2f  pthread %.2f  cas+tls %.2f ns\n",(b-a)/N,(c-b)/N,(d-c)/N);}
}
