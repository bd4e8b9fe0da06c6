#ifndef VAED_VERSION_H
#define VAED_VERSION_H
#define VAED_VERSION "0.1.0"
#endif
